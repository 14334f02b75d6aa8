// Package apns sends pushes to Apple devices through sideshow/apns2, with
// provider-token (.p8) or certificate authentication, one client (and so
// one HTTP/2 connection pool) per APNs environment.
package apns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Config selects the authentication and the hosts.
type Config struct {
	KeyFile, KeyID, TeamID string // token authentication (.p8)
	CertFile, CertPassword string // certificate authentication (.p12 or .pem)
	ProductionURL          string // default apns2.HostProduction
	SandboxURL             string // default apns2.HostDevelopment
	CAFile                 string // extra roots to trust (a proxy, a test fake); "" = system roots
}

// Configured reports whether any credentials are set.
func (c Config) Configured() bool { return c.KeyFile != "" || c.CertFile != "" }

// Provider is an APNs sender.
type Provider struct {
	clients map[string]*apns2.Client // environment → client
	tok     *token.Token
	auth    string
}

// New builds the clients; they connect on the first push (Warm connects
// earlier).
func New(cfg Config) (*Provider, error) {
	var tlsCfg tls.Config
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--apns-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--apns-ca-file %s: no PEM certificate in it", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	p := &Provider{clients: map[string]*apns2.Client{}}
	newClient := func() (*apns2.Client, error) {
		switch {
		case cfg.KeyFile != "" && cfg.CertFile != "":
			return nil, errors.New("APNs: give a .p8 key (--apns-key-file) or a certificate (--apns-cert-file), not both")
		case cfg.KeyFile != "":
			if cfg.KeyID == "" || cfg.TeamID == "" {
				return nil, errors.New("APNs token authentication needs --apns-key-id and --apns-team-id")
			}
			if p.tok == nil {
				key, err := token.AuthKeyFromFile(cfg.KeyFile)
				if err != nil {
					return nil, fmt.Errorf("--apns-key-file %s: %w", cfg.KeyFile, err)
				}
				p.tok = &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
			}
			p.auth = "token"
			c := apns2.NewTokenClient(p.tok)
			c.HTTPClient.Transport = transport(tlsCfg.Clone())
			return c, nil
		default:
			cert, err := loadCert(cfg.CertFile, cfg.CertPassword)
			if err != nil {
				return nil, err
			}
			p.auth = "certificate"
			c := apns2.NewClient(cert)
			tc := tlsCfg.Clone()
			tc.Certificates = []tls.Certificate{cert}
			c.HTTPClient.Transport = transport(tc)
			return c, nil
		}
	}
	for env, host := range map[string]string{domain.Production: or(cfg.ProductionURL, apns2.HostProduction), domain.Sandbox: or(cfg.SandboxURL, apns2.HostDevelopment)} {
		c, err := newClient()
		if err != nil {
			return nil, err
		}
		c.Host = host
		// Our context bounds each attempt; apns2's 60 s client timeout
		// would only hide a stuck one.
		c.HTTPClient.Timeout = 0
		p.clients[env] = c
	}
	return p, nil
}

// transport is the HTTP/2-only connection pool of one APNs host: the
// standard library's HTTP/2 (apns2's own x/net transport is deprecated),
// with apns2's keep-alive pings.
func transport(tc *tls.Config) *http.Transport {
	var protos http.Protocols
	protos.SetHTTP2(true)
	return &http.Transport{
		TLSClientConfig:     tc,
		Protocols:           &protos,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		IdleConnTimeout:     0, // keep the connection: APNs asks providers not to reconnect often
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second},
	}
}

func loadCert(path, password string) (tls.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--apns-cert-file: %w", err)
	}
	cert, err := certificate.FromPemBytes(b, password)
	if err != nil {
		if cert, err2 := certificate.FromP12Bytes(b, password); err2 == nil {
			return cert, nil
		}
		return tls.Certificate{}, fmt.Errorf("--apns-cert-file %s: neither PEM nor PKCS#12: %w", path, err)
	}
	return cert, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Auth is "token" or "certificate".
func (p *Provider) Auth() string { return p.auth }

// Send makes one attempt.
func (p *Provider) Send(ctx context.Context, push domain.Push) domain.Answer {
	c := p.clients[push.Device.Environment]
	if c == nil {
		c = p.clients[domain.Production]
	}
	r := push.Request
	n := &apns2.Notification{
		DeviceToken: push.Device.Token,
		Topic:       push.Device.Topic(r.Type),
		ApnsID:      push.MessageID,
		CollapseID:  r.CollapseID,
		Priority:    r.Priority,
		Expiration:  r.ExpiresAt,
		PushType:    apns2.EPushType(r.Type),
		Payload:     domain.APNsPayload(r),
	}
	start := time.Now()
	res, err := c.PushWithContext(ctx, n)
	lat := time.Since(start)
	if err != nil {
		return domain.Answer{Verdict: transportVerdict(err), Reason: err.Error(), Latency: lat}
	}
	a := domain.Answer{Verdict: domain.JudgeAPNs(res.StatusCode, res.Reason), Status: res.StatusCode, Reason: res.Reason, ProviderID: res.ApnsID, Latency: lat}
	if res.StatusCode == http.StatusGone && !res.Timestamp.IsZero() {
		a.UnregisteredAt = res.Timestamp.UTC()
	}
	return a
}

// RefreshAuth makes the next push sign a new provider token (after
// APNs said ExpiredProviderToken, e.g. when the clock jumped).
func (p *Provider) RefreshAuth() {
	if p.tok == nil {
		return
	}
	p.tok.Lock()
	p.tok.IssuedAt = 0
	p.tok.Unlock()
}

// CloseIdleConnections closes the pools' idle connections.
func (p *Provider) CloseIdleConnections() {
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

// transportVerdict: a push whose connection never came up did not reach
// APNs and may be retried; any other failure may have happened after
// APNs had the request.
func transportVerdict(err error) domain.Verdict {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return domain.Retry
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var unknownAuth x509.UnknownAuthorityError
	if errors.As(err, &certErr) || errors.As(err, &recErr) || errors.As(err, &unknownAuth) {
		return domain.Retry
	}
	return domain.InDoubt
}
