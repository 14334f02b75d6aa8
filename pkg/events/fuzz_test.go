package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParse: any bytes from the network cost an error at most, and an
// envelope Parse accepts survives being stored again — Marshal, then
// Parse, gives the same event (consumers re-publish what they read: the
// dead-letter copies, the rebuild's replays).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"specversion":"1.0","id":"abc","source":"switchyard/esl-gateway/gw1","type":"call.started","subject":"calls.u1.started","time":"2026-11-23T05:03:08.123456789Z","datacontenttype":"application/json","callid":"u1","data":{"caller":"+44"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","time":"9999-12-31T23:59:59-23:59","data":null}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":[1, 2 ,"\u00e9"]}`,
		`{"specversion":"0.3"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("accepted %q, then cannot marshal it: %v", b, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("accepted %q, marshalled it as %q, which Parse refuses: %v", b, out, err)
		}
		if again.SpecVersion != e.SpecVersion || again.ID != e.ID || again.Source != e.Source || again.Type != e.Type ||
			again.Subject != e.Subject || again.DataContentType != e.DataContentType || again.CallID != e.CallID || !again.Time.Equal(e.Time) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, again)
		}
		if want, got := compact(t, e.Data), compact(t, again.Data); !bytes.Equal(want, got) {
			t.Fatalf("round trip changed the data: %s → %s", want, got)
		}
	})
}

// compact is data as JSON compacts it; absent data is null.
func compact(t *testing.T, data json.RawMessage) []byte {
	if len(data) == 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		t.Fatalf("data %q is not JSON: %v", data, err)
	}
	return buf.Bytes()
}
