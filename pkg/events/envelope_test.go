package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRoundTripAndWireShape(t *testing.T) {
	e, err := New("abc", "switchyard/esl-gateway/gw1", "call.started", "calls.u1.started", "u1", map[string]string{"caller": "+44"})
	if err != nil {
		t.Fatal(err)
	}
	e.Time = time.Date(2026, 11, 23, 5, 3, 8, 123456789, time.UTC)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	json.Unmarshal(b, &wire)
	for k, want := range map[string]any{"specversion": "1.0", "id": "abc", "type": "call.started", "callid": "u1",
		"time": "2026-11-23T05:03:08.123456789Z", "datacontenttype": "application/json", "source": "switchyard/esl-gateway/gw1"} {
		if wire[k] != want {
			t.Errorf("%s = %v, want %v", k, wire[k], want)
		}
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]string
	if err := got.DecodeData(&data); err != nil || data["caller"] != "+44" || !got.Time.Equal(e.Time) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`{"specversion":"0.3","id":"a","source":"s","type":"t"}`,
		`{"specversion":"1.0","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"a","type":"t"}`,
		strings.Repeat("x", MaxSize+1),
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("accepted %.40q", in)
		}
	}
}

func TestIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if seen[id] || len(id) != 32 {
			t.Fatalf("id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}
