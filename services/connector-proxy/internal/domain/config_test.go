package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func intp(n int) *int { return &n }

func sfConnector() Connector {
	return Connector{Org: "acme", Name: "sf", Type: TypeSalesforce, Salesforce: &SalesforceSettings{
		LoginURL: "https://login.salesforce.com", Auth: AuthClientCredentials, ClientID: "cid", ClientSecret: "topsecret-cc"}}
}

func TestConnectorValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *Connector)
		field string
	}{
		{"salesforce cc", func(c *Connector) {}, ""},
		{"salesforce jwt", func(c *Connector) {
			c.Salesforce.Auth, c.Salesforce.ClientSecret, c.Salesforce.Username, c.Salesforce.PrivateKey = AuthJWTBearer, "", "bot@acme", "PEM"
		}, ""},
		{"bad org", func(c *Connector) { c.Org = "a/b" }, "org"},
		{"bad name", func(c *Connector) { c.Name = "" }, "name"},
		{"bad type", func(c *Connector) { c.Type = "ldap" }, "type"},
		{"two types", func(c *Connector) { c.SOAP = &SOAPSettings{URL: "https://gw", SessionID: "k"} }, "salesforce"},
		{"no secret", func(c *Connector) { c.Salesforce.ClientSecret = "" }, "salesforce.client_secret"},
		{"jwt no user", func(c *Connector) { c.Salesforce.Auth, c.Salesforce.PrivateKey = AuthJWTBearer, "PEM" }, "salesforce.username"},
		{"bad auth", func(c *Connector) { c.Salesforce.Auth = "password" }, "salesforce.auth"},
		{"credentials from core-api", func(c *Connector) {
			c.Salesforce = &SalesforceSettings{CredentialsID: "sf-main"}
		}, ""},
		{"credentials_id and a secret", func(c *Connector) { c.Salesforce.CredentialsID = "sf-main" }, "salesforce.credentials_id"},
		{"bad login url", func(c *Connector) { c.Salesforce.LoginURL = "login.salesforce.com" }, "salesforce.login_url"},
		{"bad version", func(c *Connector) { c.Salesforce.APIVersion = "v62" }, "salesforce.api_version"},
		{"ttl range", func(c *Connector) { c.CacheTTLSeconds = intp(-1) }, "cache_ttl_seconds"},
		{"retries range", func(c *Connector) { c.Retries = intp(9) }, "retries"},
		{"soap", func(c *Connector) {
			c.Type, c.Salesforce, c.SOAP = TypeSOAP, nil, &SOAPSettings{URL: "https://gw.internal/soap", SessionID: "k"}
		}, ""},
		{"soap no key", func(c *Connector) {
			c.Type, c.Salesforce, c.SOAP = TypeSOAP, nil, &SOAPSettings{URL: "https://gw.internal/soap"}
		}, "soap.session_id"},
		{"coreapi", func(c *Connector) {
			c.Type, c.Salesforce, c.CoreAPI = TypeCoreAPI, nil, &CoreAPISettings{URL: "https://core/v1"}
		}, ""},
		{"http", func(c *Connector) {
			c.Type, c.Salesforce = TypeHTTP, nil
			c.HTTP = &HTTPSettings{Endpoints: map[string]Endpoint{"balance": {URL: "https://billing.example/v1/accounts/{{account}}/balance"},
				"search": {Method: "POST", URL: "https://billing.example/v1/search", Body: `{"phone": {{phone}}}`, Idempotent: true}},
				SecretHeaders: map[string]Secret{"X-Api-Key": "k"}}
		}, ""},
		{"http host placeholder", func(c *Connector) {
			c.Type, c.Salesforce = TypeHTTP, nil
			c.HTTP = &HTTPSettings{Endpoints: map[string]Endpoint{"x": {URL: "https://{{h}}/x"}}}
		}, "http.endpoints.x.url"},
		{"http quoted placeholder", func(c *Connector) {
			c.Type, c.Salesforce = TypeHTTP, nil
			c.HTTP = &HTTPSettings{Endpoints: map[string]Endpoint{"x": {Method: "POST", URL: "https://h/x", Body: `{"p": "{{p}}"}`}}}
		}, "http.endpoints.x"},
		{"http header injection", func(c *Connector) {
			c.Type, c.Salesforce = TypeHTTP, nil
			c.HTTP = &HTTPSettings{Endpoints: map[string]Endpoint{"x": {URL: "https://h/x"}}, Headers: map[string]string{"X-A": "1\r\nX-B: 2"}}
		}, "http.headers"},
	} {
		c := sfConnector()
		tc.edit(&c)
		err := c.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%s: got %v, want an error on %s", tc.name, err, tc.field)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c := sfConnector()
	c.HTTP = &HTTPSettings{SecretHeaders: map[string]Secret{"X-Api-Key": "topsecret-header"}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "connector", c, "secret", c.Salesforce.ClientSecret, "settings", c.Salesforce)
	red, _ := json.Marshal(c.Redact())
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v %#v %s %q", c.Salesforce, c.Salesforce, c.Salesforce.ClientSecret, c.Salesforce.ClientSecret), logs.String(), string(red)} {
		if strings.Contains(out, "topsecret") {
			t.Errorf("a secret leaked: %s", out)
		}
	}
	if !strings.Contains(string(red), `"client_secret":"***redacted***"`) || !strings.Contains(string(red), `"X-Api-Key":"***redacted***"`) {
		t.Errorf("redacted form: %s", red)
	}
	if cl := c.Clone(); cl.Salesforce.ClientSecret.Reveal() != "topsecret-cc" || cl.HTTP.SecretHeaders["X-Api-Key"].Reveal() != "topsecret-header" {
		t.Error("a clone lost the secrets")
	}
}

func TestKeepSecrets(t *testing.T) {
	old := sfConnector()
	old.HTTP = &HTTPSettings{SecretHeaders: map[string]Secret{"X-Api-Key": "hk"}}
	edited := old.Redact()
	edited.Description = "edited"
	if err := edited.KeepSecrets(&old); err != nil {
		t.Fatal(err)
	}
	if edited.Salesforce.ClientSecret != "topsecret-cc" || edited.HTTP.SecretHeaders["X-Api-Key"] != "hk" {
		t.Fatalf("secrets not kept: %s %s", edited.Salesforce.ClientSecret.Reveal(), edited.HTTP.SecretHeaders["X-Api-Key"].Reveal())
	}
	fresh := sfConnector().Redact()
	if err := fresh.KeepSecrets(nil); err == nil || AsError(err).Field != "salesforce.client_secret" {
		t.Fatalf("redacted secret with nothing stored: %v", err)
	}
}
