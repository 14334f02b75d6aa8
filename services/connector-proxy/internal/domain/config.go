package domain

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Connector types.
const (
	TypeSalesforce = "salesforce" // Salesforce REST with OAuth 2.0
	TypeSOAP       = "soap"       // legacy orgs through the SOAP service-gateway
	TypeCoreAPI    = "coreapi"    // core-api group data
	TypeHTTP       = "http"       // generic templated HTTP returning JSON
)

// Salesforce OAuth flows.
const (
	AuthClientCredentials = "client_credentials"
	AuthJWTBearer         = "jwt_bearer"
)

// Redacted stands for a secret in what the admin API returns; PUT it back
// to keep the stored secret.
const Redacted = "***redacted***"

// Secret is a credential. It prints as Redacted in logs, %v and JSON, so
// that a configuration can never leak one by being logged or returned;
// the config store keeps secrets apart (Secrets, SetSecret) and Reveal is
// for the one place that sends a secret upstream.
type Secret string

func (Secret) String() string               { return Redacted }
func (Secret) GoString() string             { return `"` + Redacted + `"` }
func (Secret) LogValue() slog.Value         { return slog.StringValue(Redacted) }
func (s Secret) Format(f fmt.State, _ rune) { f.Write([]byte(Redacted)) }

// MarshalJSON writes Redacted for a secret that is set, "" otherwise.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte(`""`), nil
	}
	return []byte(`"` + Redacted + `"`), nil
}

// Reveal is the secret's value.
func (s Secret) Reveal() string { return string(s) }

// DefaultMaxRecords is a query's bound on records across pages when its
// connector sets none.
const DefaultMaxRecords = 2000

// Connector is one connector of an org, as stored and as PUT.
type Connector struct {
	Org         string `json:"org"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	// CacheTTLSeconds: how long a read's answer is served from the cache
	// (nil: the proxy's --cache-ttl; 0: not cached).
	CacheTTLSeconds *int `json:"cache_ttl_seconds,omitempty"`
	// StaleForSeconds: how long past its TTL a cached answer may still be
	// served when the upstream fails (nil: --stale-for; 0: never).
	StaleForSeconds *int `json:"stale_for_seconds,omitempty"`
	// Retries of a failed read, inside the deadline (nil: --retries).
	Retries *int `json:"retries,omitempty"`
	// MaxRecords bounds a query's records across pages (0: DefaultMaxRecords).
	MaxRecords int `json:"max_records,omitempty"`

	Salesforce *SalesforceSettings `json:"salesforce,omitempty"`
	SOAP       *SOAPSettings       `json:"soap,omitempty"`
	CoreAPI    *CoreAPISettings    `json:"coreapi,omitempty"`
	HTTP       *HTTPSettings       `json:"http,omitempty"`

	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SalesforceSettings configure a Salesforce REST connector.
type SalesforceSettings struct {
	// LoginURL is where tokens come from (POST {login_url}/services/oauth2/token):
	// https://login.salesforce.com, https://test.salesforce.com or the org's My Domain.
	LoginURL string `json:"login_url"`
	// InstanceURL overrides the instance_url of the token response.
	InstanceURL string `json:"instance_url,omitempty"`
	APIVersion  string `json:"api_version,omitempty"` // e.g. "62.0"; "": the proxy's default
	Auth        string `json:"auth"`                  // client_credentials or jwt_bearer
	ClientID    string `json:"client_id"`
	// ClientSecret for client_credentials.
	ClientSecret Secret `json:"client_secret,omitempty"`
	// Username (the JWT's sub) and PrivateKey (PEM, PKCS#1 or PKCS#8 RSA)
	// for jwt_bearer.
	Username   string `json:"username,omitempty"`
	PrivateKey Secret `json:"private_key,omitempty"`
	// Audience of the JWT; "": https://test.salesforce.com when the login
	// URL is the sandbox's, else https://login.salesforce.com.
	Audience string `json:"audience,omitempty"`
	// CredentialsID names the org's data connector in core-api
	// (GET {core-api}/orgs/{org}/data-connectors/{id}) whose auth,
	// login_url, client_id, client_secret, username and private_key are
	// used instead of those above; they are read again at every token
	// request, so a rotation in core-api is picked up by the next one.
	CredentialsID string `json:"credentials_id,omitempty"`
}

// SOAPSettings configure a legacy org's connector through the
// service-gateway.
type SOAPSettings struct {
	URL       string `json:"url"`        // the gateway's SOAP endpoint
	SessionID Secret `json:"session_id"` // the key the gateway issued the org (SessionHeader)
}

// CoreAPISettings configure a core-api connector.
type CoreAPISettings struct {
	URL   string `json:"url"` // base, e.g. https://core-api.internal/v1
	Token Secret `json:"token,omitempty"`
	// OrgID is the org's id in core-api ("": the connector's org).
	OrgID string `json:"org_id,omitempty"`
}

// HTTPSettings configure a generic HTTP connector: named endpoints a
// request picks with its query field.
type HTTPSettings struct {
	Endpoints     map[string]Endpoint `json:"endpoints"`
	Headers       map[string]string   `json:"headers,omitempty"`
	SecretHeaders map[string]Secret   `json:"secret_headers,omitempty"` // e.g. Authorization, X-Api-Key
}

// Endpoint is one templated request; {{name}} placeholders take params.
type Endpoint struct {
	Method string `json:"method,omitempty"` // GET (default) or POST
	URL    string `json:"url"`
	Body   string `json:"body,omitempty"` // JSON template (POST)
	// Idempotent marks a POST that may be cached, coalesced and retried
	// (a search API); GET always is.
	Idempotent bool `json:"idempotent,omitempty"`
}

var apiVersionPattern = regexp.MustCompile(`^[1-9][0-9]\.0$`)

// Validate checks a connector's configuration.
func (c *Connector) Validate() error {
	if !ValidName(c.Org) {
		return Invalid("org", "org %q: want 1-64 letters, digits, '-' or '_'", clip(c.Org))
	}
	if !ValidName(c.Name) {
		return Invalid("name", "name %q: want 1-64 letters, digits, '-' or '_'", clip(c.Name))
	}
	if len(c.Description) > 1024 {
		return Invalid("description", "at most 1024 bytes")
	}
	for _, r := range []struct {
		field string
		v     *int
		max   int
	}{{"cache_ttl_seconds", c.CacheTTLSeconds, 86400}, {"stale_for_seconds", c.StaleForSeconds, 7 * 86400}, {"retries", c.Retries, 5}} {
		if r.v != nil && (*r.v < 0 || *r.v > r.max) {
			return Invalid(r.field, "%s: want 0-%d", r.field, r.max)
		}
	}
	if c.MaxRecords < 0 || c.MaxRecords > 50000 {
		return Invalid("max_records", "max_records: want 1-50000 (0: %d)", DefaultMaxRecords)
	}
	set := 0
	for _, p := range []bool{c.Salesforce != nil, c.SOAP != nil, c.CoreAPI != nil, c.HTTP != nil} {
		if p {
			set++
		}
	}
	wantOne := func(has bool) error {
		if !has || set != 1 {
			return Invalid(c.Type, "a %s connector has a %q object and no other type's settings", c.Type, c.Type)
		}
		return nil
	}
	switch c.Type {
	case TypeSalesforce:
		if err := wantOne(c.Salesforce != nil); err != nil {
			return err
		}
		return c.Salesforce.validate()
	case TypeSOAP:
		if err := wantOne(c.SOAP != nil); err != nil {
			return err
		}
		if err := checkBaseURL("soap.url", c.SOAP.URL); err != nil {
			return err
		}
		if c.SOAP.SessionID == "" {
			return Invalid("soap.session_id", "soap.session_id is required")
		}
	case TypeCoreAPI:
		if err := wantOne(c.CoreAPI != nil); err != nil {
			return err
		}
		if err := checkBaseURL("coreapi.url", c.CoreAPI.URL); err != nil {
			return err
		}
		if c.CoreAPI.OrgID != "" && !idPattern.MatchString(c.CoreAPI.OrgID) {
			return Invalid("coreapi.org_id", "coreapi.org_id: want 1-128 letters, digits or . _ : @ -")
		}
	case TypeHTTP:
		if err := wantOne(c.HTTP != nil); err != nil {
			return err
		}
		return c.HTTP.validate()
	default:
		return Invalid("type", "type %q: want salesforce, soap, coreapi or http", clip(c.Type))
	}
	return nil
}

func checkBaseURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Invalid(field, "%s %q: want http(s)://host[:port][/path]", field, clip(s))
	}
	return nil
}

func (s *SalesforceSettings) validate() error {
	if s.CredentialsID != "" {
		if !idPattern.MatchString(s.CredentialsID) {
			return Invalid("salesforce.credentials_id", "credentials_id: want 1-128 letters, digits or . _ : @ -")
		}
		if s.ClientSecret != "" || s.PrivateKey != "" {
			return Invalid("salesforce.credentials_id", "with credentials_id the secrets come from core-api; remove client_secret and private_key")
		}
		if s.LoginURL != "" {
			if err := checkBaseURL("salesforce.login_url", s.LoginURL); err != nil {
				return err
			}
		}
		return nil
	}
	return s.validateCredentials()
}

// validateCredentials checks the OAuth settings, as configured or as read
// from core-api.
func (s *SalesforceSettings) validateCredentials() error {
	if err := checkBaseURL("salesforce.login_url", s.LoginURL); err != nil {
		return err
	}
	if s.InstanceURL != "" {
		if err := checkBaseURL("salesforce.instance_url", s.InstanceURL); err != nil {
			return err
		}
	}
	if s.APIVersion != "" && !apiVersionPattern.MatchString(s.APIVersion) {
		return Invalid("salesforce.api_version", "api_version %q: want e.g. 62.0", clip(s.APIVersion))
	}
	if s.ClientID == "" || len(s.ClientID) > 256 {
		return Invalid("salesforce.client_id", "salesforce.client_id is required (the connected app's consumer key)")
	}
	switch s.Auth {
	case AuthClientCredentials:
		if s.ClientSecret == "" {
			return Invalid("salesforce.client_secret", "client_credentials needs salesforce.client_secret")
		}
	case AuthJWTBearer:
		if s.Username == "" {
			return Invalid("salesforce.username", "jwt_bearer needs salesforce.username (the JWT's subject)")
		}
		if s.PrivateKey == "" {
			return Invalid("salesforce.private_key", "jwt_bearer needs salesforce.private_key (PEM)")
		}
		if s.Audience != "" {
			if err := checkBaseURL("salesforce.audience", s.Audience); err != nil {
				return err
			}
		}
	default:
		return Invalid("salesforce.auth", "salesforce.auth %q: want client_credentials or jwt_bearer", clip(s.Auth))
	}
	return nil
}

var headerNamePattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")

func (h *HTTPSettings) validate() error {
	if len(h.Endpoints) == 0 || len(h.Endpoints) > 100 {
		return Invalid("http.endpoints", "http.endpoints: 1-100 named endpoints")
	}
	for name, e := range h.Endpoints {
		field := "http.endpoints." + name
		if !ValidName(name) {
			return Invalid("http.endpoints", "endpoint name %q: want 1-64 letters, digits, '-' or '_'", clip(name))
		}
		switch e.Method {
		case "", http.MethodGet:
			if e.Body != "" {
				return Invalid(field+".body", "a GET has no body")
			}
		case http.MethodPost:
		default:
			return Invalid(field+".method", "method %q: want GET or POST", clip(e.Method))
		}
		if err := CheckURLTemplate(e.URL); err != nil {
			return Invalid(field+".url", "%v", err)
		}
		sample := map[string]any{}
		for _, p := range append(Placeholders(e.URL), Placeholders(e.Body)...) {
			sample[p] = "x"
		}
		if _, err := BindHTTP(e.URL, e.Body, sample); err != nil {
			return Invalid(field, "%v", AsError(err).Message)
		}
	}
	for k, v := range h.Headers {
		if !headerNamePattern.MatchString(k) || strings.ContainsAny(v, "\r\n") {
			return Invalid("http.headers", "header %q: want a token name and a one-line value", clip(k))
		}
	}
	for k, v := range h.SecretHeaders {
		if !headerNamePattern.MatchString(k) || strings.ContainsAny(string(v), "\r\n") {
			return Invalid("http.secret_headers", "header %q: want a token name and a one-line value", clip(k))
		}
	}
	return nil
}

// ReadOnly reports whether an http endpoint is a read (cached, coalesced,
// retried).
func (e Endpoint) ReadOnly() bool {
	return e.Method == "" || e.Method == http.MethodGet || e.Idempotent
}

// secretFields are the secrets of the configuration by name, as
// pointers (HTTP secret headers are handled by Secrets and SetSecret).
func (c *Connector) secretFields() map[string]*Secret {
	m := map[string]*Secret{}
	if s := c.Salesforce; s != nil {
		m["salesforce.client_secret"], m["salesforce.private_key"] = &s.ClientSecret, &s.PrivateKey
	}
	if s := c.SOAP; s != nil {
		m["soap.session_id"] = &s.SessionID
	}
	if s := c.CoreAPI; s != nil {
		m["coreapi.token"] = &s.Token
	}
	return m
}

const secretHeaderPrefix = "http.secret_headers."

// Secrets are the secrets that are set, by name (salesforce.client_secret,
// http.secret_headers.X-Api-Key, …).
func (c *Connector) Secrets() map[string]string {
	out := map[string]string{}
	for name, p := range c.secretFields() {
		if *p != "" {
			out[name] = string(*p)
		}
	}
	if h := c.HTTP; h != nil {
		for k, v := range h.SecretHeaders {
			if v != "" {
				out[secretHeaderPrefix+k] = string(v)
			}
		}
	}
	return out
}

// SetSecret sets a secret by name; false when the configuration has no
// such secret.
func (c *Connector) SetSecret(name, value string) bool {
	if k, ok := strings.CutPrefix(name, secretHeaderPrefix); ok {
		if c.HTTP == nil || c.HTTP.SecretHeaders == nil {
			return false
		}
		if _, ok := c.HTTP.SecretHeaders[k]; !ok {
			return false
		}
		c.HTTP.SecretHeaders[k] = Secret(value)
		return true
	}
	p, ok := c.secretFields()[name]
	if ok {
		*p = Secret(value)
	}
	return ok
}

// Redact is the configuration as the admin API shows it: every secret
// that is set replaced by Redacted.
func (c Connector) Redact() Connector {
	b, err := json.Marshal(c)
	if err != nil {
		panic("domain: connector does not marshal: " + err.Error())
	}
	var out Connector
	if err := json.Unmarshal(b, &out); err != nil {
		panic("domain: connector does not unmarshal: " + err.Error())
	}
	return out
}

// Clone is a deep copy, secrets included.
func (c Connector) Clone() Connector {
	out := c.Redact()
	for name, v := range c.Secrets() {
		out.SetSecret(name, v)
	}
	return out
}

// KeepSecrets replaces each secret given as Redacted with the stored
// one (old may be nil): an operator can GET, edit and PUT back.
func (c *Connector) KeepSecrets(old *Connector) error {
	var stored map[string]string
	if old != nil {
		stored = old.Secrets()
	}
	mine := c.Secrets()
	names := make([]string, 0, len(mine))
	for name, v := range mine {
		if v == Redacted {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		v, ok := stored[name]
		if !ok {
			return Invalid(name, "%s is %s but no secret is stored for it: send the value", name, Redacted)
		}
		c.SetSecret(name, v)
	}
	return nil
}

// LogValue keeps a configuration out of logs but for what names it.
func (c Connector) LogValue() slog.Value {
	return slog.GroupValue(slog.String("org", c.Org), slog.String("name", c.Name), slog.String("type", c.Type))
}

// WithCredentials is s with the OAuth settings read from core-api laid
// over it, checked.
func (s SalesforceSettings) WithCredentials(from SalesforceSettings) (SalesforceSettings, error) {
	out := s
	if from.LoginURL != "" {
		out.LoginURL = from.LoginURL
	}
	if out.LoginURL == "" {
		out.LoginURL = "https://login.salesforce.com"
	}
	if from.InstanceURL != "" {
		out.InstanceURL = from.InstanceURL
	}
	if from.Audience != "" {
		out.Audience = from.Audience
	}
	out.Auth, out.ClientID, out.ClientSecret, out.Username, out.PrivateKey = from.Auth, from.ClientID, from.ClientSecret, from.Username, from.PrivateKey
	return out, out.validateCredentials()
}
