package salesforce

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// token is an access token and the instance it is for.
type token struct {
	access      string
	instanceURL string
}

// tokenFetchTimeout bounds a token request, which runs apart from any one
// caller (callers waiting for it may come and go).
const tokenFetchTimeout = 15 * time.Second

// ParsePrivateKey reads a PEM RSA key (PKCS#1 or PKCS#8).
func ParsePrivateKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#1 or PKCS#8 private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key; Salesforce's JWT bearer flow needs RSA", k)
	}
	return rk, nil
}

// current returns the cached token, or fetches one; concurrent callers
// share one fetch, and each waits only as long as its own context allows.
func (c *Connector) current(ctx context.Context) (token, error) {
	c.mu.Lock()
	t := c.tok
	c.mu.Unlock()
	if t.access != "" {
		return t, nil
	}
	ch := c.fetches.DoChan("token", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
		defer cancel()
		t, err := c.fetchToken(fctx)
		if err == nil {
			c.mu.Lock()
			c.tok = t
			c.mu.Unlock()
		}
		return t, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return token{}, r.Err
		}
		return r.Val.(token), nil
	case <-ctx.Done():
		return token{}, domain.Errorf(domain.CodeTimeout, "salesforce: no access token within the request's deadline")
	}
}

// invalidate drops the cached token if it is still the one that failed,
// so that many calls failing with one expired token refresh it once.
func (c *Connector) invalidate(failed token) {
	c.mu.Lock()
	if c.tok.access == failed.access {
		c.tok = token{}
	}
	c.mu.Unlock()
}

// settings are the OAuth settings of this token request: as configured,
// or read from core-api.
func (c *Connector) settings(ctx context.Context) (domain.SalesforceSettings, error) {
	s := c.opts.Settings
	if s.CredentialsID == "" {
		return s, nil
	}
	from, err := c.opts.Credentials(ctx, s.CredentialsID)
	if err != nil {
		e := domain.AsError(err)
		out := *e
		out.Message = "reading the Salesforce credentials from core-api: " + e.Message
		if out.Code == domain.CodeNotFound {
			out.Code = domain.CodeAuthFailed
		}
		return s, &out
	}
	merged, err := s.WithCredentials(from)
	if err != nil {
		return s, domain.Errorf(domain.CodeAuthFailed, "core-api's data connector %s is not usable: %v", s.CredentialsID, domain.AsError(err).Message)
	}
	if merged.Auth == domain.AuthJWTBearer && merged.PrivateKey.Reveal() != c.keyPEM {
		k, err := ParsePrivateKey(merged.PrivateKey.Reveal())
		if err != nil {
			return s, domain.Errorf(domain.CodeAuthFailed, "core-api's data connector %s: private_key: %v", s.CredentialsID, err)
		}
		c.key, c.keyPEM = k, merged.PrivateKey.Reveal()
	}
	return merged, nil
}

func (c *Connector) fetchToken(ctx context.Context) (token, error) {
	s, err := c.settings(ctx)
	if err != nil {
		return token{}, err
	}
	form := url.Values{}
	reason := "client_credentials"
	switch s.Auth {
	case domain.AuthClientCredentials:
		form.Set("grant_type", "client_credentials")
		form.Set("client_id", s.ClientID)
		form.Set("client_secret", s.ClientSecret.Reveal())
	case domain.AuthJWTBearer:
		reason = "jwt_bearer"
		a, err := c.assertion(s)
		if err != nil {
			return token{}, domain.Errorf(domain.CodeAuthFailed, "salesforce: signing the JWT assertion: %v", err)
		}
		form.Set("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
		form.Set("assertion", a)
	}
	if c.opts.OnToken != nil {
		c.opts.OnToken(reason)
	}
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(s.LoginURL, "/")+"/services/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return token{}, domain.Errorf(domain.CodeUpstreamError, "salesforce: token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, derr := upstream.Do(ctx, c.opts.Client, req, 64<<10, "salesforce token endpoint")
	if derr != nil {
		return token{}, derr
	}
	if resp.Status != http.StatusOK {
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(resp.Body, &oe)
		if resp.Status >= 500 || oe.Error == "" {
			e := domain.Upstream(domain.CodeUpstreamError, resp.Status, oe.Error, "salesforce token endpoint answered HTTP %d", resp.Status)
			e.Retryable = resp.Status >= 500
			return token{}, e
		}
		return token{}, domain.Upstream(domain.CodeAuthFailed, resp.Status, oe.Error, "salesforce refused the connector's credentials: %s: %s", oe.Error, oe.Description)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	if err := json.Unmarshal(resp.Body, &tr); err != nil || tr.AccessToken == "" {
		return token{}, domain.Errorf(domain.CodeUpstreamError, "salesforce token endpoint answered without an access_token")
	}
	t := token{access: tr.AccessToken, instanceURL: strings.TrimRight(tr.InstanceURL, "/")}
	if s.InstanceURL != "" {
		t.instanceURL = strings.TrimRight(s.InstanceURL, "/")
	}
	if u, err := url.Parse(t.instanceURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return token{}, domain.Errorf(domain.CodeUpstreamError, "salesforce token endpoint answered an unusable instance_url %q", tr.InstanceURL)
	}
	return t, nil
}

// assertion is the JWT bearer grant's RS256 assertion: iss the connected
// app's client id, sub the user, aud the login server, exp in three
// minutes (Salesforce's maximum).
func (c *Connector) assertion(s domain.SalesforceSettings) (string, error) {
	aud := s.Audience
	if aud == "" {
		aud = "https://login.salesforce.com"
		if u, err := url.Parse(s.LoginURL); err == nil && u.Host == "test.salesforce.com" {
			aud = "https://test.salesforce.com"
		}
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256"}) + "." +
		enc(map[string]any{"iss": s.ClientID, "sub": s.Username, "aud": aud, "exp": c.opts.Now().Add(3 * time.Minute).Unix()})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
