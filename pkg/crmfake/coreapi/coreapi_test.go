package coreapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCoreAPI(t *testing.T) {
	core := New("tok")
	srv := httptest.NewServer(core)
	defer srv.Close()
	core.PutGroup("acme", "g1", map[string]any{"id": "g1", "name": "Sales", "extension": "2001"})
	core.PutGroup("acme", "g2", map[string]any{"id": "g2", "name": "Support"})
	core.PutDataConnector("acme", "sf", map[string]any{"type": "salesforce", "client_id": "cid", "client_secret": "s"})
	core.PutPolicy("ivr", "call.answer()")
	get := func(path, token, etag string) (int, string, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("ETag")
	}
	for _, tc := range []struct {
		path, token string
		status      int
		contains    string
	}{
		{"/v1/orgs/acme/groups/g1", "tok", 200, `"name":"Sales"`},
		{"/v1/orgs/acme/groups", "tok", 200, `{"groups":[{"extension":"2001","id":"g1","name":"Sales"},{"id":"g2","name":"Support"}]}`},
		{"/v1/orgs/other/groups", "tok", 200, `{"groups":[]}`},
		{"/v1/orgs/acme/data-connectors/sf", "tok", 200, `"client_secret":"s"`},
		{"/v1/policies/ivr/script", "tok", 200, "call.answer()"},
		{"/v1/orgs/acme/groups/g9", "tok", 404, `"code":"not_found"`},
		{"/v1/orgs/acme/groups/g1", "bad", 401, `"code":"unauthorized"`},
	} {
		status, body, _ := get(tc.path, tc.token, "")
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.path, status, body)
		}
	}
	_, _, etag := get("/v1/orgs/acme/groups/g1", "tok", "")
	if status, _, _ := get("/v1/orgs/acme/groups/g1", "tok", etag); status != 304 {
		t.Errorf("If-None-Match: %d", status)
	}
	core.SetRequestLimit(1)
	get("/v1/orgs/acme/groups/g1", "tok", "")
	if status, body, _ := get("/v1/orgs/acme/groups/g1", "tok", ""); status != 429 || !strings.Contains(body, "rate_limited") {
		t.Errorf("limit: %d %s", status, body)
	}
}
