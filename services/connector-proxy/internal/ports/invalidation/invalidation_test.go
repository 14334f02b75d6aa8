package invalidation

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Notice
		err      string
	}{
		{"object", `{"org":"acme","connector":"sf","object":"Account","origin":"ab12"}`, Notice{Org: "acme", Connector: "sf", Object: "Account", Origin: "ab12"}, ""},
		{"no object: the whole connector", `{"org":"acme","connector":"hooks","origin":"ab12"}`, Notice{Org: "acme", Connector: "hooks", Origin: "ab12"}, ""},
		{"not json", `{"org":`, Notice{}, "not the JSON"},
		{"unknown field", `{"org":"acme","connector":"sf","origin":"a","all":true}`, Notice{}, "not the JSON"},
		{"trailing data", `{"org":"acme","connector":"sf","origin":"a"} {}`, Notice{}, "after its JSON"},
		{"bad org", `{"org":"../x","connector":"sf","origin":"a"}`, Notice{}, "want names"},
		{"no connector", `{"org":"acme","origin":"a"}`, Notice{}, "want names"},
		{"bad object", `{"org":"acme","connector":"sf","object":"Account; DROP","origin":"a"}`, Notice{}, "want an identifier"},
		{"no origin", `{"org":"acme","connector":"sf"}`, Notice{}, "no origin"},
		{"too big", `{"org":"acme","connector":"sf","origin":"` + strings.Repeat("a", MaxNoticeBytes) + `"}`, Notice{}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v", n, err, tc.want)
			}
		})
	}
}

// Any bytes: an error or a notice that passes the checks and encodes
// back to itself — never a panic, never an unchecked name.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"org":"acme","connector":"sf","object":"Account","origin":"ab12"}`))
	f.Add([]byte(`{"org":"acme","connector":"sf","origin":"a"} x`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Parse(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(n)
		if m, err := Parse(again); err != nil || m != n {
			t.Fatalf("accepted %q as %+v, which does not parse back (%v)", b, n, err)
		}
	})
}
