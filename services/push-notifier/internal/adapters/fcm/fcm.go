// Package fcm sends pushes to Android devices through Firebase Cloud
// Messaging's HTTP v1 API, authenticated as a service account: a JWT
// signed with the account's key is traded for an access token at the
// account's token_uri (golang.org/x/oauth2/jwt), cached until it expires.
package fcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Scope is the OAuth scope of sending.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// Config locates the credentials and the endpoint.
type Config struct {
	CredentialsFile string // service-account JSON key
	Project         string // default: the key's project_id
	URL             string // default https://fcm.googleapis.com
	CAFile          string // extra roots to trust (tests); "" = system roots
}

// Configured reports whether credentials are set.
func (c Config) Configured() bool { return c.CredentialsFile != "" }

// Provider is an FCM sender.
type Provider struct {
	endpoint string
	http     *http.Client // to FCM, with the access token
	conf     *jwt.Config
	base     *http.Client // to the token endpoint

	mu sync.Mutex
	ts oauth2.TokenSource
}

type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// New reads the service account.
func New(cfg Config) (*Provider, error) {
	raw, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("--fcm-credentials-file: %w", err)
	}
	var sa serviceAccount
	if err := json.Unmarshal(raw, &sa); err != nil {
		return nil, fmt.Errorf("--fcm-credentials-file %s: not a service-account JSON key: %w", cfg.CredentialsFile, err)
	}
	if sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, fmt.Errorf("--fcm-credentials-file %s: not a service-account key (type %q, client_email, private_key)", cfg.CredentialsFile, sa.Type)
	}
	project := cfg.Project
	if project == "" {
		project = sa.ProjectID
	}
	if project == "" {
		return nil, errors.New("FCM: no project: set --fcm-project or use a key with project_id")
	}
	if sa.TokenURI == "" {
		sa.TokenURI = "https://oauth2.googleapis.com/token"
	}
	tr := &http.Transport{
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     5 * time.Minute,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--fcm-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--fcm-ca-file %s: no PEM certificate in it", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	base := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	p := &Provider{
		endpoint: or(cfg.URL, "https://fcm.googleapis.com") + "/v1/projects/" + project + "/messages:send",
		base:     base,
		conf: &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
			Scopes: []string{Scope}, TokenURL: sa.TokenURI},
	}
	p.RefreshAuth()
	p.http = &http.Client{Transport: &oauth2.Transport{Base: tr, Source: tokenSource{p}}}
	return p, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tokenSource reads the provider's current source, which RefreshAuth
// replaces.
type tokenSource struct{ p *Provider }

func (t tokenSource) Token() (*oauth2.Token, error) {
	t.p.mu.Lock()
	ts := t.p.ts
	t.p.mu.Unlock()
	tok, err := ts.Token()
	if err != nil {
		return nil, &noTokenError{err}
	}
	return tok, nil
}

// noTokenError: no access token, so the message never left.
type noTokenError struct{ err error }

func (e *noTokenError) Error() string { return "FCM access token: " + e.err.Error() }
func (e *noTokenError) Unwrap() error { return e.err }

// RefreshAuth drops the cached access token (after a 401).
func (p *Provider) RefreshAuth() {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.base)
	p.mu.Lock()
	p.ts = oauth2.ReuseTokenSource(nil, p.conf.TokenSource(ctx))
	p.mu.Unlock()
}

// Warm fetches an access token, so the first push does not wait for it.
func (p *Provider) Warm() error {
	_, err := tokenSource{p}.Token()
	return err
}

type message struct {
	Token        string            `json:"token"`
	Data         map[string]string `json:"data,omitempty"`
	Notification *notification     `json:"notification,omitempty"`
	Android      android           `json:"android"`
}

type notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type android struct {
	Priority              string `json:"priority"`
	TTL                   string `json:"ttl"`
	CollapseKey           string `json:"collapse_key,omitempty"`
	RestrictedPackageName string `json:"restricted_package_name,omitempty"`
}

// Send makes one attempt.
func (p *Provider) Send(ctx context.Context, push domain.Push) domain.Answer {
	r := push.Request
	m := message{Token: push.Device.Token, Data: domain.FCMData(r), Android: android{
		Priority: "NORMAL", TTL: ttl(r.ExpiresAt), CollapseKey: r.CollapseID, RestrictedPackageName: push.Device.Bundle,
	}}
	if r.Priority == 10 {
		m.Android.Priority = "HIGH"
	}
	if r.Type == domain.Alert {
		m.Notification = &notification{Title: r.Title, Body: r.Body}
	}
	body, _ := json.Marshal(map[string]any{"message": m})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return domain.Answer{Verdict: domain.Rejected, Reason: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.http.Do(req)
	lat := time.Since(start)
	if err != nil {
		return domain.Answer{Verdict: transportVerdict(err), Reason: err.Error(), Latency: lat}
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a := domain.Answer{Status: resp.StatusCode, Latency: lat}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		json.Unmarshal(rb, &ok)
		a.Verdict, a.ProviderID = domain.Delivered, ok.Name
		return a
	}
	a.Reason = errorCode(rb, resp.StatusCode)
	a.Verdict = domain.JudgeFCM(resp.StatusCode, a.Reason)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		a.RetryAfter = time.Duration(min(s, 60)) * time.Second
	}
	return a
}

// errorCode is the FcmError errorCode of an error body, else its status.
func errorCode(body []byte, status int) string {
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Details []struct {
				Type      string `json:"@type"`
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	if e.Error.Status != "" {
		return e.Error.Status
	}
	return http.StatusText(status)
}

func ttl(expires time.Time) string {
	s := int64(time.Until(expires).Seconds())
	return strconv.FormatInt(max(s, 0), 10) + "s"
}

func transportVerdict(err error) domain.Verdict {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return domain.Retry
	}
	var nt *noTokenError
	if errors.As(err, &nt) {
		return domain.Retry
	}
	return domain.InDoubt
}

// CloseIdleConnections closes idle connections.
func (p *Provider) CloseIdleConnections() { p.http.CloseIdleConnections() }
