package events

import (
	"bytes"
	"encoding/json"
	"reflect"
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
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"html":"<a&b>","n":1.50}}`,
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
		// The same JSON value, not the same bytes: Marshal compacts the
		// data and escapes <, > and & in its strings.
		if want, got := value(t, e.Data), value(t, again.Data); !reflect.DeepEqual(want, got) {
			t.Fatalf("round trip changed the data: %s → %s", e.Data, again.Data)
		}
	})
}

// value is data decoded (numbers as their text); absent data is null.
func value(t *testing.T, data json.RawMessage) any {
	if len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("data %q is not JSON: %v", data, err)
	}
	return v
}
