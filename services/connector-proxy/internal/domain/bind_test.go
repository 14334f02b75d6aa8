package domain

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
)

func TestBindSOQL(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		params      map[string]any
		want        string
		field       string // error's field
	}{
		{"text", "SELECT Id FROM Account WHERE Phone = :phone", map[string]any{"phone": "+441234"}, "SELECT Id FROM Account WHERE Phone = '+441234'", ""},
		{"injection", "SELECT Id FROM Account WHERE Phone = :phone", map[string]any{"phone": "' OR Name LIKE '%"}, `SELECT Id FROM Account WHERE Phone = '\' OR Name LIKE \'%'`, ""},
		{"backslash then quote", "SELECT Id FROM Account WHERE Name = :n", map[string]any{"n": `\' OR Id != null OR Name = '`}, `SELECT Id FROM Account WHERE Name = '\\\' OR Id != null OR Name = \''`, ""},
		{"controls", "SELECT Id FROM A WHERE N = :n", map[string]any{"n": "a\nb\tc\"d"}, `SELECT Id FROM A WHERE N = 'a\nb\tc\"d'`, ""},
		{"number bool null", "SELECT Id FROM A WHERE X = :x AND Y = :y AND Z = :z", map[string]any{"x": json.Number("-12.5"), "y": true, "z": nil}, "SELECT Id FROM A WHERE X = -12.5 AND Y = true AND Z = null", ""},
		{"list", "SELECT Id FROM A WHERE T IN :tiers", map[string]any{"tiers": []any{"VIP", "Go'ld", json.Number("3")}}, `SELECT Id FROM A WHERE T IN ('VIP', 'Go\'ld', 3)`, ""},
		{"twice", "SELECT Id FROM A WHERE X = :x OR Y = :x", map[string]any{"x": "1"}, "SELECT Id FROM A WHERE X = '1' OR Y = '1'", ""},
		{"colon in literal", "SELECT Id FROM A WHERE X = ':x' AND Y = :y", map[string]any{"y": "1"}, "SELECT Id FROM A WHERE X = ':x' AND Y = '1'", ""},
		{"escaped quote in literal", `SELECT Id FROM A WHERE X = 'it\'s :x' AND Y = :y`, map[string]any{"y": "1"}, `SELECT Id FROM A WHERE X = 'it\'s :x' AND Y = '1'`, ""},
		{"date literal", "SELECT Id FROM A WHERE D = LAST_N_DAYS:30 AND Y = :y", map[string]any{"y": "1"}, "SELECT Id FROM A WHERE D = LAST_N_DAYS:30 AND Y = '1'", ""},
		{"missing", "SELECT Id FROM A WHERE X = :x", nil, "", "params"},
		{"unused", "SELECT Id FROM A", map[string]any{"x": "1"}, "", "params.x"},
		{"bad number", "SELECT Id FROM A WHERE X = :x", map[string]any{"x": json.Number("1e5")}, "", "params.x"},
		{"empty list", "SELECT Id FROM A WHERE X IN :x", map[string]any{"x": []any{}}, "", "params.x"},
	} {
		got, err := BindSOQL(tc.query, tc.params)
		if tc.field != "" {
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field {
				t.Errorf("%s: err %v, want one on %s", tc.name, err, tc.field)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tc.name, got, err, tc.want)
		}
	}
}

// The bound query, parsed as Salesforce parses SOQL, compares the field
// with exactly the caller's text, whatever it is.
func TestBoundTextStaysOneLiteral(t *testing.T) {
	for _, v := range []string{"' OR Name LIKE '%", `\`, `\'`, `''`, "'\n OR Id != null", `%' OR Id != null OR Name = '`, "ünïcode ' \\u0027"} {
		checkOneLiteral(t, v)
	}
}

func checkOneLiteral(t *testing.T, v string) {
	t.Helper()
	q, err := BindSOQL("SELECT Id FROM Account WHERE Phone = :p", map[string]any{"p": v})
	if err != nil {
		t.Fatalf("%q: %v", v, err)
	}
	parsed, err := soql.Parse(q)
	if err != nil {
		t.Fatalf("%q: bound query does not parse: %v\n%s", v, err, q)
	}
	w := parsed.Where
	if w == nil || w.Kind != "cmp" || w.Field != "Phone" || w.Op != "=" || w.Value != v || parsed.Limit != -1 {
		t.Fatalf("%q changed the query: %s → %+v", v, q, w)
	}
}

func FuzzBindSOQL(f *testing.F) {
	for _, s := range []string{"' OR Name LIKE '%", `\`, "a\nb", "\\u0041", "'; DELETE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if _, err := SOQLLiteral(v); err != nil {
			t.Fatal(err)
		}
		if (&Request{Org: "a", Connector: "b", Query: "x", Params: map[string]any{"p": v}}).Validate() != nil {
			return // refused before binding (NUL, invalid UTF-8, too long)
		}
		checkOneLiteral(t, v)
	})
}

func TestBindHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, url, body string
		params          map[string]any
		wantURL         string
		wantBody        string
		field           string
	}{
		{"path and query", "https://api.example/v1/accounts/{{id}}?phone={{phone}}&x=1", "", map[string]any{"id": "a/b c", "phone": "+44 1&2=3"},
			"https://api.example/v1/accounts/a%2Fb%20c?phone=%2B44+1%262%3D3&x=1", "", ""},
		{"number and bool", "https://api.example/v1/{{n}}?b={{b}}", "", map[string]any{"n": json.Number("42"), "b": true}, "https://api.example/v1/42?b=true", "", ""},
		{"body", "https://api.example/search", `{"phone": {{phone}}, "tiers": {{tiers}}}`, map[string]any{"phone": `"},"admin":true,"x":{"`, "tiers": []any{"VIP"}},
			"https://api.example/search", `{"phone": "\"},\"admin\":true,\"x\":{\"", "tiers": ["VIP"]}`, ""},
		{"dot-dot segment", "https://api.example/v1/{{id}}/x", "", map[string]any{"id": ".."}, "", "", "params.id"},
		{"dot-dot in query is data", "https://api.example/v1?q={{id}}", "", map[string]any{"id": ".."}, "https://api.example/v1?q=..", "", ""},
		{"missing", "https://api.example/{{id}}", "", nil, "", "", "params"},
		{"unused", "https://api.example/x", "", map[string]any{"id": "1"}, "", "", "params.id"},
		{"list in url", "https://api.example/{{id}}", "", map[string]any{"id": []any{"1"}}, "", "", "params.id"},
	} {
		got, err := BindHTTP(tc.url, tc.body, tc.params)
		if tc.field != "" {
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field {
				t.Errorf("%s: err %v, want one on %s", tc.name, err, tc.field)
			}
			continue
		}
		if err != nil || got.URL != tc.wantURL || got.Body != tc.wantBody {
			t.Errorf("%s: %+v %v", tc.name, got, err)
		}
	}
}

func TestCheckURLTemplate(t *testing.T) {
	for tmpl, ok := range map[string]bool{
		"https://api.example/v1/{{id}}":     true,
		"http://127.0.0.1:8080/x?q={{q}}":   true,
		"https://{{host}}/x":                false,
		"https://api.example{{port}}/x":     false,
		"https://api.{{x}}.example/":        false,
		"https://user:pw@api.example/x":     false,
		"ftp://api.example/x":               false,
		"https://api.example/x#{{frag}}":    false,
		"/relative/{{x}}":                   false,
		"https://api.example?q={{q}}":       true,
		"https://api.example?q={{q}}&r=1/2": true,
	} {
		if err := CheckURLTemplate(tmpl); (err == nil) != ok {
			t.Errorf("%s: %v", tmpl, err)
		}
	}
}

// A value in a URL template never changes the host, and decodes back to
// itself.
func FuzzBindHTTP(f *testing.F) {
	for _, s := range []string{"a/b", "..", "?x=1", "#f", "%2e%2e", "@evil.example", "\\", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		b, err := BindHTTP("https://api.example/v1/{{p}}/x?q={{q}}", "", map[string]any{"p": v, "q": v})
		if err != nil {
			if v == "." || v == ".." {
				return
			}
			t.Fatal(err)
		}
		u, err := url.Parse(b.URL)
		if err != nil {
			t.Fatalf("%q gives an unparsable URL %s", v, b.URL)
		}
		if u.Host != "api.example" || u.Scheme != "https" || u.Fragment != "" {
			t.Fatalf("%q moved the request: %s", v, b.URL)
		}
		seg := strings.TrimSuffix(strings.TrimPrefix(u.EscapedPath(), "/v1/"), "/x")
		if p, err := url.PathUnescape(seg); err != nil || p != v {
			t.Fatalf("%q: path segment %q", v, seg)
		}
		if q := u.Query(); len(q) != 1 || q.Get("q") != v {
			t.Fatalf("%q: query %v", v, q)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"org":"acme","connector":"sf","query":"SELECT Id FROM Account WHERE Phone = :p","params":{"p":"+44"},"timeout_ms":300}`,
		`{"org":"acme","connector":"sf","op":"get","object":"Account","id":"001","fields":["Name"]}`,
		`{"org":"acme","connector":"sf","op":"update","object":"Account","id":"001","values":{"A":1}}`,
		`{"org":"a","connector":"b","query":"q","params":{"l":[1,"x",null,true]}}`,
		`{}`, `[`, `{"params":{"a":{"b":1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body, 64<<10)
		if err != nil {
			if AsError(err).Code != CodeInvalidRequest {
				t.Fatalf("refusal with code %s", AsError(err).Code)
			}
			return
		}
		// A valid request survives a round trip to the same cache key, and
		// binds or is refused with a named field, never a panic.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRequest(again, 1<<20)
		if err != nil || r2.CacheKey(1) != r.CacheKey(1) {
			t.Fatalf("round trip: %v\n%s", err, again)
		}
		if r.Op == OpQuery {
			if _, err := BindSOQL(r.Query, r.Params); err != nil && AsError(err).Field == "" {
				t.Fatalf("bind error without a field: %v", err)
			}
			if _, err := BindHTTP("https://h.example/{{p}}", "", r.Params); err != nil && AsError(err).Code != CodeInvalidRequest {
				t.Fatalf("bind error %v", err)
			}
		}
	})
}
