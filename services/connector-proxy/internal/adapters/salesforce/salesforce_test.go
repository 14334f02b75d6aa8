package salesforce

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
	corefake "github.com/switchyard-voice/switchyard/pkg/crmfake/coreapi"
	sffake "github.com/switchyard-voice/switchyard/pkg/crmfake/salesforce"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/connectortest"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/coreapi"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

type fake struct{ *sffake.Server }

func (f fake) Data() *soql.Store           { return f.Server.Data }
func (f fake) Switches() *crmfake.Switches { return &f.Server.Switches }
func (f fake) ExpireCredentials()          { f.Server.ExpireTokens() }
func (f fake) Queries() []string           { return f.Server.Queries() }

// env is a connector against a fake org, with the paths it requested.
type env struct {
	fake  *sffake.Server
	url   string
	paths chan string
}

func newEnv(t *testing.T, opts sffake.Options) *env {
	e := &env{fake: sffake.New(opts), paths: make(chan string, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case e.paths <- r.Method + " " + r.URL.Path:
		default:
		}
		e.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.fake.AddClient("cid", "s3cret")
	return e
}

func (e *env) connector(t *testing.T, s domain.SalesforceSettings, maxRecords int) *Connector {
	if s.LoginURL == "" {
		s.LoginURL = e.url
	}
	if s.Auth == "" {
		s.Auth, s.ClientID, s.ClientSecret = domain.AuthClientCredentials, "cid", "s3cret"
	}
	c, err := New(Options{Settings: s, MaxRecords: maxRecords})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T, maxRecords int) connectortest.Fixture {
		e := newEnv(t, sffake.Options{PageSize: 2})
		return connectortest.Fixture{Connector: e.connector(t, domain.SalesforceSettings{}, maxRecords), Fake: fake{e.fake}, Refreshes: true}
	})
}

func query(c *Connector, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := c.Do(ctx, &domain.Request{Op: domain.OpQuery, Query: "SELECT Id FROM Account"})
	return err
}

func TestTokenIsCachedAndRefreshedOnceForManyCallers(t *testing.T) {
	e := newEnv(t, sffake.Options{})
	e.fake.Data.Put("Account", soql.Record{"Id": "001000000000001AAA"})
	c := e.connector(t, domain.SalesforceSettings{}, 0)
	var grants atomic.Int32
	c.opts.OnToken = func(string) { grants.Add(1) }
	e.fake.SetLatency(20 * time.Millisecond) // callers overlap
	for round, expire := range []bool{false, true} {
		if expire {
			e.fake.ExpireTokens()
		}
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() { errs <- query(c, 5*time.Second) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if n := e.fake.TokenRequests(); n != round+1 {
			t.Fatalf("round %d: %d token requests for 20 concurrent callers, want %d", round, n, round+1)
		}
	}
}

func pemKey(k *rsa.PrivateKey, pkcs8 bool) string {
	if pkcs8 {
		b, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b}))
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func TestAuthFlows(t *testing.T) {
	e := newEnv(t, sffake.Options{})
	e.fake.Data.Put("Account", soql.Record{"Id": "001000000000001AAA"})
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	e.fake.AddJWTClient("jwtapp", &key.PublicKey, "bot@acme.example")
	for _, tc := range []struct {
		name     string
		s        domain.SalesforceSettings
		code     string
		upstream string
	}{
		{"client credentials", domain.SalesforceSettings{}, "", ""},
		{"jwt pkcs1", domain.SalesforceSettings{Auth: domain.AuthJWTBearer, ClientID: "jwtapp", Username: "bot@acme.example", PrivateKey: domain.Secret(pemKey(key, false))}, "", ""},
		{"jwt pkcs8", domain.SalesforceSettings{Auth: domain.AuthJWTBearer, ClientID: "jwtapp", Username: "bot@acme.example", PrivateKey: domain.Secret(pemKey(key, true))}, "", ""},
		{"jwt wrong key", domain.SalesforceSettings{Auth: domain.AuthJWTBearer, ClientID: "jwtapp", Username: "bot@acme.example", PrivateKey: domain.Secret(pemKey(other, false))}, domain.CodeAuthFailed, "invalid_grant"},
		{"jwt sandbox audience", domain.SalesforceSettings{Auth: domain.AuthJWTBearer, ClientID: "jwtapp", Username: "bot@acme.example", PrivateKey: domain.Secret(pemKey(key, false)), Audience: "https://test.salesforce.com"}, "", ""},
		{"wrong secret", domain.SalesforceSettings{Auth: domain.AuthClientCredentials, ClientID: "cid", ClientSecret: "nope"}, domain.CodeAuthFailed, "invalid_client"},
	} {
		err := query(e.connector(t, tc.s, 0), 5*time.Second)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		de := domain.AsError(err)
		if err == nil || de.Code != tc.code || de.Details["upstream_code"] != tc.upstream {
			t.Errorf("%s: %v, want %s/%s", tc.name, err, tc.code, tc.upstream)
		}
		if strings.Contains(de.Message, "nope") {
			t.Errorf("%s: the secret is in the message: %s", tc.name, de.Message)
		}
	}
	if _, err := New(Options{Settings: domain.SalesforceSettings{Auth: domain.AuthJWTBearer, PrivateKey: "not pem"}}); err == nil || domain.AsError(err).Field != "salesforce.private_key" {
		t.Errorf("bad key: %v", err)
	}
}

func TestAPIVersionAndSessionTimeout(t *testing.T) {
	e := newEnv(t, sffake.Options{TokenTTL: 100 * time.Millisecond})
	e.fake.Data.Put("Account", soql.Record{"Id": "001000000000001AAA"})
	c := e.connector(t, domain.SalesforceSettings{APIVersion: "58.0"}, 0)
	if err := query(c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.fake.TokenRequests() < 2 && time.Now().Before(deadline) {
		if err := query(c, 5*time.Second); err != nil {
			t.Fatalf("after the session timed out: %v", err)
		}
	}
	if e.fake.TokenRequests() < 2 {
		t.Fatal("the token was never renewed")
	}
	close(e.paths)
	for p := range e.paths {
		if strings.Contains(p, "/services/data/") && !strings.Contains(p, "/services/data/v58.0/") {
			t.Fatalf("requested %s with api_version 58.0", p)
		}
	}
}

func TestIDsAreChecked(t *testing.T) {
	c, _ := New(Options{Settings: domain.SalesforceSettings{Auth: domain.AuthClientCredentials}})
	for id, ok := range map[string]bool{"001000000000001": true, "001000000000001AAA": true, "001": false, "001000000000001AA": false, "001000000000001-AA": false} {
		err := c.Check(&domain.Request{Op: domain.OpGet, Object: "Account", ID: id})
		if (err == nil) != ok {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// With a credentials_id the OAuth settings come from core-api, read again
// at each token request: a rotated secret is used from the next refresh.
func TestCredentialsFromCoreAPI(t *testing.T) {
	e := newEnv(t, sffake.Options{})
	e.fake.Data.Put("Account", soql.Record{"Id": "001000000000001AAA"})
	core := corefake.New("core-tok")
	srv := httptest.NewServer(core)
	defer srv.Close()
	creds := coreapi.New(coreapi.Options{Org: "acme", Settings: domain.CoreAPISettings{URL: srv.URL + "/v1", Token: "core-tok"}})
	core.PutDataConnector("acme", "sf-main", map[string]any{"type": "salesforce", "auth": "client_credentials", "login_url": e.url, "client_id": "cid", "client_secret": "s3cret"})
	c, err := New(Options{Settings: domain.SalesforceSettings{CredentialsID: "sf-main"}, Credentials: creds.SalesforceCredentials})
	if err != nil {
		t.Fatal(err)
	}
	if err := query(c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Rotation: Salesforce takes only the new secret, core-api has it.
	e.fake.AddClient("cid", "rotated")
	e.fake.ExpireTokens()
	core.PutDataConnector("acme", "sf-main", map[string]any{"type": "salesforce", "auth": "client_credentials", "login_url": e.url, "client_id": "cid", "client_secret": "rotated"})
	if err := query(c, 5*time.Second); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	for _, tc := range []struct {
		name  string
		creds any
		id    string
		code  string
	}{
		{"missing", nil, "nope", domain.CodeAuthFailed},
		{"wrong type", map[string]any{"type": "ldap"}, "ldap", domain.CodeAuthFailed},
		{"incomplete", map[string]any{"type": "salesforce", "auth": "client_credentials", "client_id": "cid"}, "half", domain.CodeAuthFailed},
	} {
		if tc.creds != nil {
			core.PutDataConnector("acme", tc.id, tc.creds)
		}
		c, _ := New(Options{Settings: domain.SalesforceSettings{CredentialsID: tc.id}, Credentials: creds.SalesforceCredentials})
		if err := query(c, 5*time.Second); err == nil || domain.AsError(err).Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := New(Options{Settings: domain.SalesforceSettings{CredentialsID: "sf-main"}}); err == nil {
		t.Error("credentials_id without core-api was accepted")
	}
}
