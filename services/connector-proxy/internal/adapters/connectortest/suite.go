// Package connectortest is the conformance suite every CRM connector
// passes (Salesforce REST, the SOAP service-gateway): the same records in
// the fake behind it, the same requests, the same results and error codes.
// It runs against the fakes of pkg/crmfake over real HTTP.
package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Connector is what the suite exercises (the engine's view of one).
type Connector interface {
	Check(req *domain.Request) error
	ReadOnly(req *domain.Request) bool
	Do(ctx context.Context, req *domain.Request) (json.RawMessage, error)
}

// Fake is the upstream behind the connector.
type Fake interface {
	Data() *soql.Store
	Switches() *crmfake.Switches
	// Queries are the SOQL texts the upstream received.
	Queries() []string
	// ExpireCredentials makes the connector's current credentials invalid.
	ExpireCredentials()
}

// Fixture is a connector wired to a fresh fake whose query pages hold
// two records, the connector limited to maxRecords records a query.
type Fixture struct {
	Connector Connector
	Fake      Fake
	// Refreshes: the connector recovers from expired credentials by
	// itself (OAuth); otherwise it reports auth_failed.
	Refreshes bool
}

// NewFixture builds a fixture.
type NewFixture func(t *testing.T, maxRecords int) Fixture

// accounts are the records every case starts with.
func seed(s *soql.Store) {
	for i, a := range []struct{ name, phone, tier string }{
		{"Acme", "+441234", "VIP"}, {"Bolt's", "+449999", "Gold"}, {"Cogs", "+447777", "Standard"},
		{"Dyna", "+446666", "Standard"}, {"Echo", "+445555", "Gold"},
	} {
		s.Put("Account", soql.Record{"Id": fmt.Sprintf("001000000000%03dAAA", i), "Name": a.name, "Phone": a.phone, "Tier__c": a.tier})
	}
}

func req(op string) *domain.Request { return &domain.Request{Org: "acme", Connector: "crm", Op: op} }

func query(q string, params map[string]any) *domain.Request {
	r := req(domain.OpQuery)
	r.Query, r.Params = q, params
	return r
}

type result struct {
	Records   []map[string]any `json:"records"`
	TotalSize int              `json:"total_size"`
	Done      bool             `json:"done"`
}

func do(t *testing.T, c Connector, r *domain.Request, timeout time.Duration) (json.RawMessage, *domain.Error) {
	t.Helper()
	if err := r.Validate(); err != nil {
		t.Fatalf("the suite's request is invalid: %v", err)
	}
	if err := c.Check(r); err != nil {
		return nil, domain.AsError(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := c.Do(ctx, r)
	if err != nil {
		var e *domain.Error
		if !errors.As(err, &e) {
			t.Fatalf("Do returned a %T, not a *domain.Error: %v", err, err)
		}
		return nil, e
	}
	return b, nil
}

func names(t *testing.T, b json.RawMessage) (result, []string) {
	t.Helper()
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	var out []string
	for _, rec := range r.Records {
		out = append(out, fmt.Sprint(rec["Name"]))
	}
	return r, out
}

// Run runs the suite.
func Run(t *testing.T, newFixture NewFixture) {
	t.Run("query binds params", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		for _, tc := range []struct {
			name   string
			q      string
			params map[string]any
			want   []string
		}{
			{"text", "SELECT Name, Tier__c FROM Account WHERE Phone = :phone", map[string]any{"phone": "+441234"}, []string{"Acme"}},
			{"quote in value", "SELECT Name FROM Account WHERE Name = :n", map[string]any{"n": "Bolt's"}, []string{"Bolt's"}},
			{"list", "SELECT Name FROM Account WHERE Tier__c IN :tiers ORDER BY Name", map[string]any{"tiers": []any{"VIP", "Gold"}}, []string{"Acme", "Bolt's", "Echo"}},
			{"no match", "SELECT Name FROM Account WHERE Phone = :phone", map[string]any{"phone": "+440000"}, nil},
		} {
			b, err := do(t, f.Connector, query(tc.q, tc.params), 5*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			r, got := names(t, b)
			if !slices.Equal(got, tc.want) || r.TotalSize != len(tc.want) || !r.Done {
				t.Errorf("%s: %s", tc.name, b)
			}
		}
	})

	t.Run("a caller's value cannot change the query", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		for _, v := range []string{"' OR Name LIKE '%", `\' OR Name LIKE '%`, "+441234' OR Tier__c != 'x"} {
			b, err := do(t, f.Connector, query("SELECT Name FROM Account WHERE Phone = :phone", map[string]any{"phone": v}), 5*time.Second)
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if _, got := names(t, b); len(got) != 0 {
				t.Errorf("%q matched %v: the value became query syntax", v, got)
			}
			qs := f.Fake.Queries()
			parsed, perr := soql.Parse(qs[len(qs)-1])
			if perr != nil || parsed.Where.Kind != "cmp" || parsed.Where.Field != "Phone" || parsed.Where.Value != v {
				t.Errorf("%q: upstream saw %s (%v)", v, qs[len(qs)-1], perr)
			}
		}
	})

	t.Run("pagination", func(t *testing.T) {
		for _, tc := range []struct {
			max   int
			want  int
			done  bool
			pages int
		}{{100, 5, true, 3}, {3, 3, false, 2}, {2, 2, false, 1}} {
			f := newFixture(t, tc.max)
			seed(f.Fake.Data())
			before := f.Fake.Switches().Hits()
			b, err := do(t, f.Connector, query("SELECT Name FROM Account ORDER BY Name", nil), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r, got := names(t, b)
			if len(got) != tc.want || r.TotalSize != 5 || r.Done != tc.done || got[0] != "Acme" {
				t.Errorf("max %d: %s", tc.max, b)
			}
			// Pages fetched: token requests are not counted by Hits' API
			// part, so compare API hits only when the fake counts them.
			if pages := f.Fake.Switches().Hits() - before; pages < tc.pages {
				t.Errorf("max %d: %d upstream requests, want at least %d pages", tc.max, pages, tc.pages)
			}
		}
	})

	t.Run("get and update", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		id := "001000000000002AAA"
		get := req(domain.OpGet)
		get.Object, get.ID, get.Fields = "Account", id, []string{"Name", "Tier__c"}
		b, err := do(t, f.Connector, get, 5*time.Second)
		var rec map[string]any
		if err != nil || json.Unmarshal(b, &rec) != nil || rec["Name"] != "Cogs" || rec["Tier__c"] != "Standard" || rec["attributes"] != nil {
			t.Fatalf("get: %s %v", b, err)
		}
		up := req(domain.OpUpdate)
		up.Object, up.ID, up.Values = "Account", id, map[string]any{"Tier__c": "VIP <&> \"x\""}
		if f.Connector.ReadOnly(up) || !f.Connector.ReadOnly(get) {
			t.Error("update must not be a read, get must")
		}
		b, err = do(t, f.Connector, up, 5*time.Second)
		if err != nil || !strings.Contains(string(b), `"updated":true`) {
			t.Fatalf("update: %s %v", b, err)
		}
		b, _ = do(t, f.Connector, get, 5*time.Second)
		if json.Unmarshal(b, &rec) != nil || rec["Tier__c"] != "VIP <&> \"x\"" {
			t.Fatalf("after update: %s", b)
		}
		for _, tc := range []struct {
			name string
			r    *domain.Request
			code string
		}{
			{"get missing", &domain.Request{Org: "acme", Connector: "crm", Op: domain.OpGet, Object: "Account", ID: "001000000000099AAA", Fields: []string{"Name"}}, domain.CodeNotFound},
			{"update missing", &domain.Request{Org: "acme", Connector: "crm", Op: domain.OpUpdate, Object: "Account", ID: "001000000000099AAA", Values: map[string]any{"Name": "x"}}, domain.CodeNotFound},
			{"update bad field", &domain.Request{Org: "acme", Connector: "crm", Op: domain.OpUpdate, Object: "Account", ID: id, Values: map[string]any{"Nope__c": "x"}}, domain.CodeMalformedQuery},
		} {
			if _, err := do(t, f.Connector, tc.r, 5*time.Second); err == nil || err.Code != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
	})

	t.Run("upstream errors are mapped", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		sw := f.Fake.Switches()
		ok := query("SELECT Name FROM Account LIMIT 1", nil)
		for _, tc := range []struct {
			name      string
			set       func()
			r         *domain.Request
			code      string
			upstream  string
			retryable bool
		}{
			{"malformed", func() {}, query("SELECT Name FROM Account WHERE", nil), domain.CodeMalformedQuery, "MALFORMED_QUERY", false},
			{"bad field", func() {}, query("SELECT Nope__c FROM Account", nil), domain.CodeMalformedQuery, "INVALID_FIELD", false},
			{"bad object", func() {}, query("SELECT Id FROM Nope__c", nil), domain.CodeMalformedQuery, "INVALID_TYPE", false},
			{"request limit", func() { sw.SetRequestLimit(1); do(t, f.Connector, ok, 5*time.Second) }, ok, domain.CodeRateLimited, "REQUEST_LIMIT_EXCEEDED", false},
			{"failure", func() { sw.SetRequestLimit(0); sw.FailNext(1) }, ok, domain.CodeUpstreamError, "", true},
			{"outage", func() { sw.SetDown(true) }, ok, domain.CodeUpstreamError, "", true},
		} {
			tc.set()
			_, err := do(t, f.Connector, tc.r, 5*time.Second)
			if err == nil || err.Code != tc.code || err.Retryable != tc.retryable || (tc.upstream != "" && err.Details["upstream_code"] != tc.upstream) {
				t.Errorf("%s: %+v, want %s (%s) retryable=%t", tc.name, err, tc.code, tc.upstream, tc.retryable)
			}
		}
		sw.SetDown(false)
		if _, err := do(t, f.Connector, ok, 5*time.Second); err != nil {
			t.Errorf("after the outage: %v", err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		ok := query("SELECT Name FROM Account LIMIT 1", nil)
		do(t, f.Connector, ok, 5*time.Second) // credentials in hand
		f.Fake.Switches().SetLatency(2 * time.Second)
		start := time.Now()
		_, err := do(t, f.Connector, ok, 100*time.Millisecond)
		if took := time.Since(start); err == nil || err.Code != domain.CodeTimeout || took > time.Second {
			t.Errorf("slow upstream: %v after %v, want timeout at the deadline", err, took)
		}
	})

	t.Run("expired credentials", func(t *testing.T) {
		f := newFixture(t, 100)
		seed(f.Fake.Data())
		ok := query("SELECT Name FROM Account LIMIT 1", nil)
		if _, err := do(t, f.Connector, ok, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		f.Fake.ExpireCredentials()
		_, err := do(t, f.Connector, ok, 5*time.Second)
		switch {
		case f.Refreshes && err != nil:
			t.Errorf("expired token not refreshed: %v", err)
		case !f.Refreshes && (err == nil || err.Code != domain.CodeAuthFailed || err.Details["upstream_code"] != "INVALID_SESSION_ID"):
			t.Errorf("expired session: %+v, want auth_failed", err)
		}
	})

	t.Run("unsupported", func(t *testing.T) {
		f := newFixture(t, 100)
		r := query("SELECT Id FROM Account WHERE Phone = :p", map[string]any{"q": "1"})
		if _, err := do(t, f.Connector, r, time.Second); err == nil || err.Code != domain.CodeInvalidRequest {
			t.Errorf("params that do not bind: %v", err)
		}
		if hits := f.Fake.Switches().Hits(); hits != 0 {
			t.Errorf("a refused request reached the upstream (%d hits)", hits)
		}
	})
}
