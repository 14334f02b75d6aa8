package callevent

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

func recorded(t *testing.T, name string) (*esl.Message, []*esl.Event) {
	t.Helper()
	tr, err := transcript.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	r := esl.NewReader(bytes.NewReader(tr.Stream(transcript.FromFS)), esl.Limits{})
	var first *esl.Message
	var evs []*esl.Event
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return first, evs
		}
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = m
		}
		if ev, err := m.Event(); err == nil {
			evs = append(evs, ev)
		}
	}
}

// A real socket session yields the call events in FreeSWITCH's order.
func TestRealSessionMapsToCallEvents(t *testing.T) {
	connect, evs := recorded(t, "outbound/01-async-full-session")
	cd := connect.ChannelData()
	callID := cd.UniqueID()
	s := StartedFrom(cd, "fs1", "gw-a", "async", "full")
	if s.CallerIDNumber != "+441234567890" || s.CallerIDName != "Alice" || s.DestinationNumber != "8084" ||
		s.Direction != "inbound" || s.Variables["switchyard_policy"] != "default" || s.CreatedAt == nil || s.Context != "default" {
		t.Fatalf("started: %+v", s)
	}
	var types []string
	var hangup Hangup
	for _, ev := range evs {
		if typ, data, ok := From(ev, callID); ok {
			types = append(types, typ)
			if h, isHangup := data.(Hangup); isHangup {
				hangup = h
			}
		}
	}
	if len(types) != 2 || types[0] != TypeAnswered || types[1] != TypeHangup {
		t.Fatalf("types %v", types)
	}
	if hangup.Cause != "MANAGER_REQUEST" || hangup.DurationMS != 6040 || hangup.BillMS != 4620 || hangup.AnswerMS != 1420 || hangup.CauseQ850 != 16 {
		t.Fatalf("hangup %+v", hangup)
	}
}

func TestDTMFAndOtherChannels(t *testing.T) {
	_, evs := recorded(t, "inbound/06-events-plain-call")
	var digits []string
	for _, ev := range evs {
		if ev.Name() != "DTMF" {
			continue
		}
		if _, _, ok := From(ev, "11111111-2222-4333-8444-555555555555"); ok {
			t.Fatal("an event of another channel became a call event")
		}
		typ, data, ok := From(ev, ev.UniqueID())
		if !ok || typ != TypeDTMF {
			t.Fatalf("DTMF not mapped")
		}
		d := data.(DTMF)
		if d.DurationMS != 250 {
			t.Fatalf("2000 samples at 8 kHz is 250 ms, got %d", d.DurationMS)
		}
		digits = append(digits, d.Digit)
	}
	if got := join(digits); got != "12#" {
		t.Fatalf("digits %q", got)
	}
}

func TestBridgeEvents(t *testing.T) {
	tests := []struct {
		name    string
		headers esl.Headers
		typ     string
		other   string
	}{
		{"bridge with Other-Leg", esl.NewHeaders("Event-Name", "CHANNEL_BRIDGE", "Unique-ID", "a", "Other-Leg-Unique-ID", "b"), TypeBridged, "b"},
		{"bridge by Bridge-B", esl.NewHeaders("Event-Name", "CHANNEL_BRIDGE", "Unique-ID", "a", "Bridge-A-Unique-ID", "a", "Bridge-B-Unique-ID", "b"), TypeBridged, "b"},
		{"unbridge", esl.NewHeaders("Event-Name", "CHANNEL_UNBRIDGE", "Unique-ID", "a", "Other-Leg-Unique-ID", "b"), TypeUnbridged, "b"},
		{"execute is not a call event", esl.NewHeaders("Event-Name", "CHANNEL_EXECUTE", "Unique-ID", "a"), "", ""},
	}
	for _, tt := range tests {
		typ, data, ok := From(&esl.Event{Headers: tt.headers}, "a")
		if typ != tt.typ || ok != (tt.typ != "") {
			t.Errorf("%s: %q %v", tt.name, typ, ok)
			continue
		}
		if ok && data.(Bridged).OtherLeg != tt.other {
			t.Errorf("%s: other leg %q", tt.name, data.(Bridged).OtherLeg)
		}
	}
}

func TestStartedBoundsVariables(t *testing.T) {
	cd := &esl.Event{Headers: esl.NewHeaders("Unique-ID", "a")}
	for i := 0; i < MaxVariables+10; i++ {
		cd.Headers = append(cd.Headers, esl.Header{Name: "variable_v" + string(rune('a'+i%26)) + itoaT(i), Value: "x"})
	}
	cd.Headers = append(cd.Headers, esl.Header{Name: "variable_huge", Value: string(make([]byte, MaxVariableBytes+1))})
	s := StartedFrom(cd, "fs1", "gw", "async", "full")
	if len(s.Variables) != MaxVariables || !s.VariablesTruncated {
		t.Fatalf("%d variables, truncated %v", len(s.Variables), s.VariablesTruncated)
	}
}

func TestSubject(t *testing.T) {
	if got := Subject("u-1", TypeHangup); got != "calls.u-1.hangup" {
		t.Fatal(got)
	}
}

func join(ss []string) string {
	out := ""
	for _, s := range ss {
		out += s
	}
	return out
}

func itoaT(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoaT(n/10) + string(rune('0'+n%10))
}
