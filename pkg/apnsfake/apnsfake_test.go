package apnsfake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	keyID  = "KEY1234567"
	teamID = "TEAM123456"
	token  = "7b6c2a1e4f0d9c8b7a6f5e4d3c2b1a0f7b6c2a1e4f0d9c8b7a6f5e4d3c2b1a0f"
)

func signES256(t *testing.T, key *ecdsa.PrivateKey, kid, iss string, iat int64) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]any{"alg": "ES256", "kid": kid}) + "." + enc(map[string]any{"iss": iss, "iat": iat})
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func client(s *Server, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool(), Certificates: certs}, ForceAttemptHTTP2: true}
	var p http.Protocols
	p.SetHTTP2(true)
	tr.Protocols = &p
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

type answer struct {
	status int
	reason string
	ts     int64
}

func push(t *testing.T, c *http.Client, url string, hdr map[string]string, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}
	var b struct {
		Reason    string `json:"reason"`
		Timestamp int64  `json:"timestamp"`
	}
	json.NewDecoder(resp.Body).Decode(&b)
	if resp.Header.Get("apns-id") == "" {
		t.Error("no apns-id in the answer")
	}
	return answer{resp.StatusCode, b.Reason, b.Timestamp}
}

func TestValidatesAsAPNsDoes(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddKey(keyID, teamID, &key.PublicKey)
	now := time.Now().Unix()
	good := "bearer " + signES256(t, key, keyID, teamID, now)
	base := func(mod func(h map[string]string)) map[string]string {
		h := map[string]string{"authorization": good, "apns-push-type": "voip", "apns-topic": "com.example.app.voip", "apns-priority": "10", "apns-expiration": "0"}
		if mod != nil {
			mod(h)
		}
		return h
	}
	c := client(s)
	dev := s.URL() + "/3/device/" + token
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		body   string
		status int
		reason string
	}{
		{"accepted", dev, base(nil), `{"aps":{}}`, 200, ""},
		{"no token", dev, base(func(h map[string]string) { delete(h, "authorization") }), `{}`, 403, "MissingProviderToken"},
		{"wrong key", dev, base(func(h map[string]string) { h["authorization"] = "bearer " + signES256(t, other, keyID, teamID, now) }), `{}`, 403, "InvalidProviderToken"},
		{"unknown kid", dev, base(func(h map[string]string) { h["authorization"] = "bearer " + signES256(t, key, "NOPE", teamID, now) }), `{}`, 403, "InvalidProviderToken"},
		{"wrong team", dev, base(func(h map[string]string) { h["authorization"] = "bearer " + signES256(t, key, keyID, "OTHER", now) }), `{}`, 403, "InvalidProviderToken"},
		{"old iat", dev, base(func(h map[string]string) { h["authorization"] = "bearer " + signES256(t, key, keyID, teamID, now-3700) }), `{}`, 403, "ExpiredProviderToken"},
		{"bad push type", dev, base(func(h map[string]string) { h["apns-push-type"] = "shout" }), `{}`, 400, "InvalidPushType"},
		{"voip topic without .voip", dev, base(func(h map[string]string) { h["apns-topic"] = "com.example.app" }), `{}`, 400, "BadTopic"},
		{"no topic", dev, base(func(h map[string]string) { delete(h, "apns-topic") }), `{}`, 400, "MissingTopic"},
		{"bad priority", dev, base(func(h map[string]string) { h["apns-priority"] = "7" }), `{}`, 400, "BadPriority"},
		{"bad expiration", dev, base(func(h map[string]string) { h["apns-expiration"] = "soon" }), `{}`, 400, "BadExpirationDate"},
		{"long collapse id", dev, base(func(h map[string]string) { h["apns-collapse-id"] = strings.Repeat("x", 65) }), `{}`, 400, "BadCollapseId"},
		{"bad apns-id", dev, base(func(h map[string]string) { h["apns-id"] = "not-a-uuid" }), `{}`, 400, "BadMessageId"},
		{"empty payload", dev, base(nil), ``, 400, "PayloadEmpty"},
		{"payload too large", dev, base(nil), `{"a":"` + strings.Repeat("x", MaxVoIPPayload) + `"}`, 413, "PayloadTooLarge"},
		{"bad device token", s.URL() + "/3/device/xyz", base(nil), `{}`, 400, "BadDeviceToken"},
		{"bad path", s.URL() + "/2/device/" + token, base(nil), `{}`, 404, "BadPath"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := push(t, c, tc.path, tc.hdr, tc.body)
			if got.status != tc.status || got.reason != tc.reason {
				t.Fatalf("got %d %q, want %d %q", got.status, got.reason, tc.status, tc.reason)
			}
		})
	}
	r := s.Requests()[0]
	if r.PushType != "voip" || r.Topic != "com.example.app.voip" || r.Priority != "10" || r.Auth != "token" || r.KeyID != keyID || r.TeamID != teamID || r.Proto != "HTTP/2.0" {
		t.Errorf("first request recorded as %+v", r)
	}
}

func TestScriptsAndUnregisteredTokens(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddKey(keyID, teamID, &key.PublicKey)
	hdr := map[string]string{"authorization": "bearer " + signES256(t, key, keyID, teamID, time.Now().Unix()), "apns-push-type": "alert", "apns-topic": "com.example.app"}
	c := client(s)
	dev := s.URL() + "/3/device/" + token
	s.Script(token, Reply(503, "ServiceUnavailable"), Reply(429, "TooManyRequests"), Reply(500, "InternalServerError"))
	for _, want := range []answer{{503, "ServiceUnavailable", 0}, {429, "TooManyRequests", 0}, {500, "InternalServerError", 0}, {200, "", 0}} {
		if got := push(t, c, dev, hdr, `{"aps":{}}`); got.status != want.status || got.reason != want.reason {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	at := time.UnixMilli(1_700_000_000_123)
	s.Unregister(token, at)
	if got := push(t, c, dev, hdr, `{"aps":{}}`); got.status != 410 || got.reason != "Unregistered" || got.ts != at.UnixMilli() {
		t.Fatalf("unregistered token answered %+v", got)
	}
	s.Reset()
	s.BindTopic(token, "com.other.app")
	if got := push(t, c, dev, hdr, `{"aps":{}}`); got.status != 400 || got.reason != "DeviceTokenNotForTopic" {
		t.Fatalf("foreign topic answered %+v", got)
	}
}

func TestClientCertificateAuthentication(t *testing.T) {
	clientCert, clientPEM, err := SelfSigned("com.example.app")
	if err != nil {
		t.Fatal(err)
	}
	cas := x509Pool(t, clientPEM)
	s, err := Start(Options{ClientCAs: cas})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hdr := map[string]string{"apns-push-type": "voip", "apns-topic": "com.example.app.voip"}
	if got := push(t, client(s, clientCert), s.URL()+"/3/device/"+token, hdr, `{"aps":{}}`); got.status != 200 {
		t.Fatalf("with a trusted client certificate: %+v", got)
	}
	if got := push(t, client(s), s.URL()+"/3/device/"+token, hdr, `{"aps":{}}`); got.status != 403 || got.reason != "MissingProviderToken" {
		t.Fatalf("without: %+v", got)
	}
	if r := s.Requests()[0]; r.Auth != "certificate" {
		t.Errorf("auth recorded as %q", r.Auth)
	}
	// An untrusted certificate fails the TLS handshake, as at APNs.
	stranger, _, _ := SelfSigned("stranger")
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/3/device/"+token, bytes.NewReader([]byte(`{}`)))
	c := client(s)
	c.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }
	if _, err := c.Do(req); err == nil {
		t.Fatal("an untrusted client certificate was accepted")
	}
}

func x509Pool(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in PEM")
	}
	return p
}
