package fcmfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type saKey struct {
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

func assertionFor(t *testing.T, k saKey, aud, scope string, iat time.Time) string {
	t.Helper()
	block, _ := pem.Decode([]byte(k.PrivateKey))
	pk, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"iss": k.ClientEmail, "scope": scope, "aud": aud, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, pk.(*rsa.PrivateKey), crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokenGrantAndSend(t *testing.T) {
	s := Start()
	defer s.Close()
	raw, err := s.NewServiceAccount("proj-1")
	if err != nil {
		t.Fatal(err)
	}
	var k saKey
	json.Unmarshal(raw, &k)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}, ForceAttemptHTTP2: true}}

	grant := func(assertion string) (int, string) {
		resp, err := c.PostForm(k.TokenURI, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b.AccessToken + b.Error
	}
	for _, tc := range []struct {
		name, aud, scope string
		iat              time.Time
		want             string
	}{
		{"wrong audience", "https://oauth2.googleapis.com/token", Scope, time.Now(), "invalid_grant"},
		{"wrong scope", k.TokenURI, "https://www.googleapis.com/auth/cloud-platform", time.Now(), "invalid_scope"},
		{"expired", k.TokenURI, Scope, time.Now().Add(-2 * time.Hour), "invalid_grant"},
	} {
		if st, got := grant(assertionFor(t, k, tc.aud, tc.scope, tc.iat)); st != 400 || got != tc.want {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, st, got, tc.want)
		}
	}
	st, access := grant(assertionFor(t, k, k.TokenURI, Scope, time.Now()))
	if st != 200 || !strings.HasPrefix(access, "ya29.") {
		t.Fatalf("grant: %d %q", st, access)
	}

	const reg = "dGVzdC1yZWdpc3RyYXRpb24tdG9rZW4tZm9yLWZjbQ:APA91bH"
	send := func(bearer, project, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/projects/"+project+"/messages:send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("answered over %s", resp.Proto)
		}
		var b struct {
			Name  string `json:"name"`
			Error struct {
				Status  string `json:"status"`
				Details []struct {
					ErrorCode string `json:"errorCode"`
				} `json:"details"`
			} `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		code := b.Error.Status
		if len(b.Error.Details) > 0 {
			code = b.Error.Details[0].ErrorCode
		}
		return resp.StatusCode, code
	}
	msg := `{"message":{"token":"` + reg + `","data":{"call_id":"x"},"android":{"priority":"HIGH","ttl":"30s"}}}`
	s.Script(reg, Response{Code: "UNAVAILABLE"}, Response{Code: "QUOTA_EXCEEDED"})
	for _, tc := range []struct {
		name, bearer, project, body string
		status                      int
		code                        string
	}{
		{"no token", "nope", "proj-1", msg, 401, "UNAUTHENTICATED"},
		{"other project", access, "proj-2", msg, 403, "SENDER_ID_MISMATCH"},
		{"bad priority", access, "proj-1", `{"message":{"token":"` + reg + `","android":{"priority":"high"}}}`, 400, "INVALID_ARGUMENT"},
		{"bad ttl", access, "proj-1", `{"message":{"token":"` + reg + `","android":{"ttl":"30"}}}`, 400, "INVALID_ARGUMENT"},
		{"no target", access, "proj-1", `{"message":{}}`, 400, "INVALID_ARGUMENT"},
		{"non-string data", access, "proj-1", `{"message":{"token":"` + reg + `","data":{"n":1}}}`, 400, "INVALID_ARGUMENT"},
		{"scripted 503", access, "proj-1", msg, 503, "UNAVAILABLE"},
		{"scripted 429", access, "proj-1", msg, 429, "QUOTA_EXCEEDED"},
		{"delivered", access, "proj-1", msg, 200, ""},
	} {
		if st, code := send(tc.bearer, tc.project, tc.body); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, st, code, tc.status, tc.code)
		}
	}
	s.Unregister(reg)
	if st, code := send(access, "proj-1", msg); st != 404 || code != "UNREGISTERED" {
		t.Errorf("unregistered: %d %q", st, code)
	}
	s.ExpireTokens()
	if st, _ := send(access, "proj-1", msg); st != 401 {
		t.Errorf("expired access token: %d", st)
	}
}
