package domain

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("x", MaxParamBytes+1)
	for _, tc := range []struct {
		name, body string
		field      string // "" means valid
	}{
		{"query", `{"org":"acme","connector":"sf","query":"SELECT Id FROM Account WHERE Phone = :p","params":{"p":"+44"},"timeout_ms":300}`, ""},
		{"op defaults to query", `{"org":"acme","connector":"sf","query":"x"}`, ""},
		{"get", `{"org":"acme","connector":"sf","op":"get","object":"Account","id":"001000000000001AAA","fields":["Name","Tier__c"]}`, ""},
		{"update", `{"org":"acme","connector":"sf","op":"update","object":"Account","id":"001","values":{"Last_Call__c":"2026-01-01","N__c":3,"F__c":null}}`, ""},
		{"list param", `{"org":"acme","connector":"sf","query":"x","params":{"tiers":["VIP","Gold"]}}`, ""},
		{"empty", ``, "body"},
		{"not json", `{"org":`, "body"},
		{"unknown field", `{"org":"acme","connector":"sf","query":"x","sql":"y"}`, "body"},
		{"trailing", `{"org":"acme","connector":"sf","query":"x"} {}`, "body"},
		{"array", `[]`, "body"},
		{"no org", `{"connector":"sf","query":"x"}`, "org"},
		{"bad org", `{"org":"a.b","connector":"sf","query":"x"}`, "org"},
		{"bad connector", `{"org":"a","connector":"../x","query":"x"}`, "connector"},
		{"negative timeout", `{"org":"a","connector":"sf","query":"x","timeout_ms":-1}`, "timeout_ms"},
		{"timeout not int", `{"org":"a","connector":"sf","query":"x","timeout_ms":1.5}`, "body"},
		{"unknown op", `{"org":"a","connector":"sf","op":"delete","object":"Account","id":"1"}`, "op"},
		{"query missing", `{"org":"a","connector":"sf"}`, "query"},
		{"query with object", `{"org":"a","connector":"sf","query":"x","object":"Account"}`, "op"},
		{"query NUL", `{"org":"a","connector":"sf","query":"x\u0000"}`, "query"},
		{"query too long", `{"org":"a","connector":"sf","query":"` + strings.Repeat("x", MaxQueryBytes+1) + `"}`, "query"},
		{"bad param name", `{"org":"a","connector":"sf","query":"x","params":{"a b":1}}`, "params"},
		{"param object", `{"org":"a","connector":"sf","query":"x","params":{"p":{"x":1}}}`, "params.p"},
		{"param nested list", `{"org":"a","connector":"sf","query":"x","params":{"p":[[1]]}}`, "params.p"},
		{"param empty list", `{"org":"a","connector":"sf","query":"x","params":{"p":[]}}`, "params.p"},
		{"param exponent", `{"org":"a","connector":"sf","query":"x","params":{"p":1e400}}`, "params.p"},
		{"param too long", `{"org":"a","connector":"sf","query":"x","params":{"p":"` + long + `"}}`, "params.p"},
		{"get without id", `{"org":"a","connector":"sf","op":"get","object":"Account"}`, "id"},
		{"get bad object", `{"org":"a","connector":"sf","op":"get","object":"Acc'ount","id":"1"}`, "object"},
		{"get bad field", `{"org":"a","connector":"sf","op":"get","object":"Account","id":"1","fields":["Name,Id"]}`, "fields"},
		{"get with values", `{"org":"a","connector":"sf","op":"get","object":"Account","id":"1","values":{"A":1}}`, "values"},
		{"get with params", `{"org":"a","connector":"sf","op":"get","object":"Account","id":"1","params":{"A":1}}`, "op"},
		{"update no values", `{"org":"a","connector":"sf","op":"update","object":"Account","id":"1"}`, "values"},
		{"update bad field", `{"org":"a","connector":"sf","op":"update","object":"Account","id":"1","values":{"<x>":1}}`, "values"},
		{"update list", `{"org":"a","connector":"sf","op":"update","object":"Account","id":"1","values":{"A":[1]}}`, "values.A"},
		{"call id", `{"org":"a","connector":"sf","query":"x","call_id":"a\nb"}`, "call_id"},
	} {
		_, err := ParseRequest([]byte(tc.body), 64<<10)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidRequest || e.Field != tc.field {
			t.Errorf("%s: got %v, want invalid_request on %s", tc.name, err, tc.field)
		}
	}
	if _, err := ParseRequest([]byte(`{"org":"a","connector":"b","query":"x"}`), 10); err == nil || AsError(err).Field != "body" {
		t.Errorf("oversized body: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want time.Duration
	}{
		{0, 2 * time.Second},
		{150, 150 * time.Millisecond},
		{10000, 10 * time.Second},
		{10001, 10 * time.Second},
		{1 << 62, 10 * time.Second},
	} {
		r := Request{TimeoutMS: tc.ms}
		if got := r.Timeout(2*time.Second, 10*time.Second); got != tc.want {
			t.Errorf("%d ms: %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestCacheKey(t *testing.T) {
	a, _ := ParseRequest([]byte(`{"org":"a","connector":"b","query":"q","params":{"x":1,"y":"2"},"timeout_ms":5}`), 1<<16)
	b, _ := ParseRequest([]byte(`{"params":{"y":"2","x":1},"query":"q","connector":"b","org":"a","call_id":"other"}`), 1<<16)
	c, _ := ParseRequest([]byte(`{"org":"a","connector":"b","query":"q","params":{"x":1,"y":2}}`), 1<<16)
	if a.CacheKey(1) != b.CacheKey(1) {
		t.Error("same look-up, different keys")
	}
	if a.CacheKey(1) == c.CacheKey(1) || a.CacheKey(1) == a.CacheKey(2) {
		t.Error("different look-ups (or generations) share a key")
	}
}

func TestOutcomes(t *testing.T) {
	for code, want := range map[string]string{
		CodeInvalidRequest: OutcomeInvalid, CodeMalformedQuery: OutcomeInvalid, CodeUnknownConnector: OutcomeInvalid,
		CodeNotFound: OutcomeNotFound, CodeTimeout: OutcomeTimeout, CodeBreakerOpen: OutcomeBreakerOpen,
		CodeBulkheadFull: OutcomeBulkheadFull, CodeOverloaded: OutcomeBulkheadFull, CodeRateLimited: OutcomeUpstreamError,
		CodeAuthFailed: OutcomeUpstreamError, CodeUpstreamError: OutcomeUpstreamError, CodeUnavailable: OutcomeUnavailable,
	} {
		if got := Outcome(code); got != want {
			t.Errorf("%s: %s, want %s", code, got, want)
		}
	}
	if ServeStale(CodeInvalidRequest) || ServeStale(CodeNotFound) || !ServeStale(CodeBreakerOpen) || !ServeStale(CodeRateLimited) {
		t.Error("stale-while-error applies to upstream trouble only")
	}
	if TripsBreaker(CodeNotFound) || TripsBreaker(CodeMalformedQuery) || TripsBreaker(CodeBulkheadFull) || !TripsBreaker(CodeUpstreamError) {
		t.Error("only upstream failures trip the breaker")
	}
}
