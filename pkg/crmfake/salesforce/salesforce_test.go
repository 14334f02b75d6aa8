package salesforce

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
)

func post(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func call(t *testing.T, method, u, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokenGrants(t *testing.T) {
	sf := New(Options{})
	srv := httptest.NewServer(sf)
	defer srv.Close()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	sf.AddClient("cid", "s3cret")
	sf.AddJWTClient("jwtapp", &key.PublicKey, "bot@acme.example")
	now := time.Now().Unix()
	claims := func(iss, sub, aud string, exp int64) map[string]any {
		return map[string]any{"iss": iss, "sub": sub, "aud": aud, "exp": exp}
	}
	jwt := func(k *rsa.PrivateKey, c map[string]any) url.Values {
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {sign(t, k, c)}}
	}
	for _, tc := range []struct {
		name      string
		form      url.Values
		status    int
		errorCode string
	}{
		{"client credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"s3cret"}}, 200, ""},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"nope"}}, 400, "invalid_client"},
		{"jwt bearer", jwt(key, claims("jwtapp", "bot@acme.example", "https://login.salesforce.com", now+60)), 200, ""},
		{"jwt other key", jwt(other, claims("jwtapp", "bot@acme.example", "https://login.salesforce.com", now+60)), 400, "invalid_grant"},
		{"jwt unknown app", jwt(key, claims("x", "bot@acme.example", "https://login.salesforce.com", now+60)), 400, "invalid_client_id"},
		{"jwt wrong audience", jwt(key, claims("jwtapp", "bot@acme.example", "https://evil.example", now+60)), 400, "invalid_grant"},
		{"jwt expired", jwt(key, claims("jwtapp", "bot@acme.example", "https://login.salesforce.com", now-1)), 400, "invalid_grant"},
		{"jwt unapproved user", jwt(key, claims("jwtapp", "eve@acme.example", "https://login.salesforce.com", now+60)), 400, "invalid_grant"},
		{"password grant", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
	} {
		status, body := post(t, srv.URL+"/services/oauth2/token", tc.form)
		if status != tc.status || (tc.errorCode != "" && body["error"] != tc.errorCode) {
			t.Errorf("%s: %d %v", tc.name, status, body)
			continue
		}
		if tc.status == 200 && (body["access_token"] == "" || body["instance_url"] != srv.URL || body["token_type"] != "Bearer") {
			t.Errorf("%s: token response %v", tc.name, body)
		}
	}
	if n := sf.TokenRequests(); n != 9 {
		t.Errorf("token requests %d", n)
	}
}

func TestRESTAPI(t *testing.T) {
	sf := New(Options{PageSize: 2, TokenTTL: time.Hour})
	srv := httptest.NewServer(sf)
	defer srv.Close()
	sf.AddClient("cid", "s")
	for i := range 5 {
		sf.Data.Put("Account", soql.Record{"Id": fmt.Sprintf("001%015d", i), "Name": fmt.Sprintf("A%d", i), "Tier__c": "Gold"})
	}
	_, tok := post(t, srv.URL+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"s"}})
	token := tok["access_token"].(string)

	// Pagination: 5 records in pages of 2.
	next := "/services/data/v62.0/query?q=" + url.QueryEscape("SELECT Id, Name FROM Account")
	var got []string
	for pages := 0; next != ""; pages++ {
		status, body := call(t, "GET", srv.URL+next, token, "")
		if status != 200 || pages > 3 {
			t.Fatalf("page %d: %d %s", pages, status, body)
		}
		var page struct {
			TotalSize      int              `json:"totalSize"`
			Done           bool             `json:"done"`
			NextRecordsURL string           `json:"nextRecordsUrl"`
			Records        []map[string]any `json:"records"`
		}
		json.Unmarshal([]byte(body), &page)
		if page.TotalSize != 5 || page.Done != (page.NextRecordsURL == "") {
			t.Fatalf("page %s", body)
		}
		for _, r := range page.Records {
			if r["attributes"].(map[string]any)["type"] != "Account" {
				t.Fatalf("record without attributes: %v", r)
			}
			got = append(got, r["Name"].(string))
		}
		next = page.NextRecordsURL
	}
	if strings.Join(got, ",") != "A0,A1,A2,A3,A4" {
		t.Fatalf("records %v", got)
	}

	id := "001000000000000003"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"get", "GET", "/services/data/v62.0/sobjects/Account/" + id + "?fields=Name", "", 200, `"Name":"A3"`},
		{"update", "PATCH", "/services/data/v62.0/sobjects/Account/" + id, `{"Tier__c":"VIP"}`, 204, ""},
		{"updated", "GET", "/services/data/v62.0/sobjects/Account/" + id, "", 200, `"Tier__c":"VIP"`},
		{"get missing", "GET", "/services/data/v62.0/sobjects/Account/001000000000000099", "", 404, `"errorCode":"NOT_FOUND"`},
		{"update bad field", "PATCH", "/services/data/v62.0/sobjects/Account/" + id, `{"Nope":1}`, 400, `"errorCode":"INVALID_FIELD"`},
		{"update bad json", "PATCH", "/services/data/v62.0/sobjects/Account/" + id, `{`, 400, `"errorCode":"JSON_PARSER_ERROR"`},
		{"malformed", "GET", "/services/data/v62.0/query?q=" + url.QueryEscape("SELECT Id FROM Account WHERE"), "", 400, `"errorCode":"MALFORMED_QUERY"`},
		{"bad locator", "GET", "/services/data/v62.0/query/01gXXX-2", "", 400, `"errorCode":"INVALID_QUERY_LOCATOR"`},
		{"old version", "GET", "/services/data/v5.0/query?q=x", "", 404, `"errorCode":"NOT_FOUND"`},
	} {
		status, body := call(t, tc.method, srv.URL+tc.path, token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	if u := sf.Data.Updates(); len(u) != 1 || u[0].Values["Tier__c"] != "VIP" {
		t.Errorf("updates %v", u)
	}

	// Switches.
	q := srv.URL + "/services/data/v62.0/query?q=" + url.QueryEscape("SELECT Id FROM Account LIMIT 1")
	for _, tc := range []struct {
		name     string
		set      func()
		status   int
		contains string
	}{
		{"ok", func() {}, 200, `"totalSize":1`},
		{"failing", func() { sf.FailNext(1) }, 500, `"errorCode":"UNKNOWN_EXCEPTION"`},
		{"down", func() { sf.SetDown(true) }, 503, `"errorCode":"SERVER_UNAVAILABLE"`},
		{"up", func() { sf.SetDown(false) }, 200, `"done":true`},
		{"limit", func() { sf.SetRequestLimit(1); call(t, "GET", q, token, "") }, 403, `"errorCode":"REQUEST_LIMIT_EXCEEDED"`},
		{"no limit", func() { sf.SetRequestLimit(0) }, 200, `"done":true`},
		{"expired", func() { sf.ExpireTokens() }, 401, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`},
	} {
		tc.set()
		status, body := call(t, "GET", q, token, "")
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
}

func TestTokenTTLAndLatency(t *testing.T) {
	sf := New(Options{TokenTTL: 50 * time.Millisecond})
	srv := httptest.NewServer(sf)
	defer srv.Close()
	sf.AddClient("cid", "s")
	sf.Data.Put("Account", soql.Record{"Id": "001000000000000001"})
	_, tok := post(t, srv.URL+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"s"}})
	u := srv.URL + "/services/data/v62.0/sobjects/Account/001000000000000001"
	if status, _ := call(t, "GET", u, tok["access_token"].(string), ""); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	sf.SetLatency(60 * time.Millisecond)
	start := time.Now()
	status, _ := call(t, "GET", u, tok["access_token"].(string), "")
	if status != 401 || time.Since(start) < 60*time.Millisecond {
		t.Fatalf("after TTL: %d in %v", status, time.Since(start))
	}
}
