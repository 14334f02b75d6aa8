package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newTestServer(t *testing.T, ready error) *httptest.Server {
	s := New(Options{Token: "t0k", Ready: []Check{{Name: "nats", Check: func(context.Context) error { return ready }}}})
	s.Handle("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Name string `json:"name"`
		}
		if err := DecodeJSON(r, &in); err != nil {
			return err
		}
		if in.Name == "" {
			return Invalid("name", "name is required")
		}
		if in.Name == "boom" {
			panic("boom")
		}
		if in.Name == "fail" {
			return errors.New("disk on fire")
		}
		WriteJSON(w, http.StatusOK, in)
		return nil
	})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, ts *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestAdminConventions(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"healthz needs no token", "GET", "/healthz", "", "", 200, ""},
		{"readyz needs no token", "GET", "/readyz", "", "", 200, ""},
		{"metrics needs no token", "GET", "/metrics", "", "", 200, ""},
		{"missing token", "POST", "/v1/echo", "", `{"name":"a"}`, 401, "unauthorized"},
		{"wrong token", "POST", "/v1/echo", "nope", `{"name":"a"}`, 401, "unauthorized"},
		{"ok", "POST", "/v1/echo", "t0k", `{"name":"a"}`, 200, ""},
		{"unknown field", "POST", "/v1/echo", "t0k", `{"nam":"a"}`, 400, "invalid_body"},
		{"not json", "POST", "/v1/echo", "t0k", `{`, 400, "invalid_body"},
		{"empty body", "POST", "/v1/echo", "t0k", ``, 400, "invalid_body"},
		{"trailing data", "POST", "/v1/echo", "t0k", `{"name":"a"} {}`, 400, "invalid_body"},
		{"validation names the field", "POST", "/v1/echo", "t0k", `{"name":""}`, 400, "invalid_name"},
		{"huge body", "POST", "/v1/echo", "t0k", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "body_too_large"},
		{"panic is a 500, not a crash", "POST", "/v1/echo", "t0k", `{"name":"boom"}`, 500, "internal"},
		{"error is a 500 JSON", "POST", "/v1/echo", "t0k", `{"name":"fail"}`, 500, "internal"},
		{"unknown endpoint", "GET", "/v1/nothing", "t0k", "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := do(t, ts, tt.method, tt.path, tt.token, tt.body)
			if status != tt.status || errCode(out) != tt.code {
				t.Fatalf("status %d code %q, want %d %q (%v)", status, errCode(out), tt.status, tt.code, out)
			}
		})
	}
}

func TestReadyzNamesTheFailingDependency(t *testing.T) {
	ts := newTestServer(t, errors.New("nats: no servers available"))
	status, out := do(t, ts, "GET", "/readyz", "", "")
	failing, _ := out["failing"].(map[string]any)
	if status != 503 || failing["nats"] != "nats: no servers available" {
		t.Fatalf("readyz %d %v", status, out)
	}
}
