package coreapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	corefake "github.com/switchyard-voice/switchyard/pkg/crmfake/coreapi"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

func TestCoreAPI(t *testing.T) {
	core := corefake.New("core-token")
	srv := httptest.NewServer(core)
	defer srv.Close()
	core.PutGroup("acme-42", "sales", map[string]any{"id": "sales", "name": "Sales", "extension": "2001"})
	core.PutGroup("other", "sales", map[string]any{"id": "sales", "name": "Not acme's"})
	c := New(Options{Org: "acme", Settings: domain.CoreAPISettings{URL: srv.URL + "/v1", Token: "core-token", OrgID: "acme-42"}})
	bad := New(Options{Org: "acme", Settings: domain.CoreAPISettings{URL: srv.URL + "/v1", Token: "wrong"}})
	do := func(c *Connector, r *domain.Request) (string, *domain.Error) {
		if err := c.Check(r); err != nil {
			return "", domain.AsError(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := c.Do(ctx, r)
		if err != nil {
			return "", domain.AsError(err)
		}
		return string(b), nil
	}
	group := &domain.Request{Op: domain.OpGet, Object: "group", ID: "sales"}
	for _, tc := range []struct {
		name string
		c    *Connector
		r    *domain.Request
		want string
		code string
	}{
		{"group", c, group, `{"extension":"2001","id":"sales","name":"Sales"}`, ""},
		{"groups", c, &domain.Request{Op: domain.OpQuery, Query: "groups"}, `{"groups":[{"extension":"2001","id":"sales","name":"Sales"}]}`, ""},
		{"missing", c, &domain.Request{Op: domain.OpGet, Object: "group", ID: "nope"}, "", domain.CodeNotFound},
		{"wrong token", bad, group, "", domain.CodeAuthFailed},
		{"other object", c, &domain.Request{Op: domain.OpGet, Object: "user", ID: "x"}, "", domain.CodeInvalidRequest},
		{"other query", c, &domain.Request{Op: domain.OpQuery, Query: "users"}, "", domain.CodeInvalidRequest},
		{"update", c, &domain.Request{Op: domain.OpUpdate, Object: "group", ID: "x", Values: map[string]any{"a": 1}}, "", domain.CodeUnsupportedOp},
	} {
		got, err := do(tc.c, tc.r)
		if tc.code != "" {
			if err == nil || err.Code != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
			continue
		}
		if err != nil || !json.Valid([]byte(got)) || got != tc.want+"\n" && got != tc.want {
			t.Errorf("%s: %s %v", tc.name, got, err)
		}
	}
	// Unchanged data is revalidated: a 304 gives the remembered body.
	hits := core.Hits()
	if got, err := do(c, group); err != nil || got == "" || core.Hits() != hits+1 {
		t.Fatalf("revalidation: %s %v", got, err)
	}
	core.PutGroup("acme-42", "sales", map[string]any{"id": "sales", "name": "Sales EMEA"})
	if got, _ := do(c, group); got != `{"id":"sales","name":"Sales EMEA"}` {
		t.Fatalf("changed group: %s", got)
	}
	core.SetRequestLimit(0)
	core.SetDown(true)
	if _, err := do(c, group); err == nil || err.Code != domain.CodeUpstreamError || !err.Retryable {
		t.Fatalf("outage: %+v", err)
	}
}
