package httpjson

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

func TestHTTPConnector(t *testing.T) {
	type seen struct{ method, uri, body, key string }
	got := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), string(b), r.Header.Get("X-Api-Key")}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/missing"):
			http.Error(w, `{"error":"no such account"}`, http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/v1/broken"):
			http.Error(w, "oops", http.StatusBadGateway)
		case strings.HasPrefix(r.URL.Path, "/v1/html"):
			io.WriteString(w, "<html>")
		default:
			io.WriteString(w, `{"balance": 12.5}`)
		}
	}))
	defer srv.Close()
	c := New(Options{Settings: domain.HTTPSettings{
		Endpoints: map[string]domain.Endpoint{
			"balance": {URL: srv.URL + "/v1/accounts/{{account}}/balance?currency={{cur}}"},
			"search":  {Method: "POST", URL: srv.URL + "/v1/search", Body: `{"phone": {{phone}}}`, Idempotent: true},
			"log":     {Method: "POST", URL: srv.URL + "/v1/log", Body: `{"call": {{call}}}`},
			"missing": {URL: srv.URL + "/v1/missing"},
			"broken":  {URL: srv.URL + "/v1/broken"},
			"html":    {URL: srv.URL + "/v1/html"},
		},
		SecretHeaders: map[string]domain.Secret{"X-Api-Key": "k1"},
	}})
	for _, tc := range []struct {
		name      string
		r         *domain.Request
		read      bool
		want      seen
		code      string
		retryable bool
	}{
		{"get", &domain.Request{Op: "query", Query: "balance", Params: map[string]any{"account": "a/../b c", "cur": "€&x=1"}}, true,
			seen{"GET", "/v1/accounts/a%2F..%2Fb%20c/balance?currency=%E2%82%AC%26x%3D1", "", "k1"}, "", false},
		{"idempotent post", &domain.Request{Op: "query", Query: "search", Params: map[string]any{"phone": `+44", "admin": true, "x": "`}}, true,
			seen{"POST", "/v1/search", `{"phone": "+44\", \"admin\": true, \"x\": \""}`, "k1"}, "", false},
		{"post", &domain.Request{Op: "query", Query: "log", Params: map[string]any{"call": "c1"}}, false, seen{"POST", "/v1/log", `{"call": "c1"}`, "k1"}, "", false},
		{"404", &domain.Request{Op: "query", Query: "missing"}, true, seen{}, domain.CodeNotFound, false},
		{"502", &domain.Request{Op: "query", Query: "broken"}, true, seen{}, domain.CodeUpstreamError, true},
		{"not json", &domain.Request{Op: "query", Query: "html"}, true, seen{}, domain.CodeUpstreamError, false},
	} {
		if c.ReadOnly(tc.r) != tc.read {
			t.Errorf("%s: ReadOnly %t", tc.name, !tc.read)
		}
		if err := c.Check(tc.r); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := c.Do(ctx, tc.r)
		cancel()
		s := <-got
		if tc.code != "" {
			if e := domain.AsError(err); err == nil || e.Code != tc.code || e.Retryable != tc.retryable {
				t.Errorf("%s: %+v, want %s", tc.name, err, tc.code)
			}
			continue
		}
		if err != nil || string(b) != `{"balance": 12.5}` || s != tc.want {
			t.Errorf("%s: %s %v, upstream saw %+v", tc.name, b, err, s)
		}
	}
	for _, tc := range []struct {
		r    *domain.Request
		code string
	}{
		{&domain.Request{Op: "query", Query: "nope"}, domain.CodeInvalidRequest},
		{&domain.Request{Op: "query", Query: "balance", Params: map[string]any{"account": "1"}}, domain.CodeInvalidRequest},
		{&domain.Request{Op: "get", Object: "A", ID: "1"}, domain.CodeUnsupportedOp},
	} {
		if err := c.Check(tc.r); err == nil || domain.AsError(err).Code != tc.code {
			t.Errorf("%+v: %v", tc.r, err)
		}
	}
}
