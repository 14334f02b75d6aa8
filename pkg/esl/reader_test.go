package esl

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderRefusesHostileFrames(t *testing.T) {
	big := strings.Repeat("X-Filler: "+strings.Repeat("a", 1200)+"\n", 1000) // ~1.2 MB of headers
	many := strings.Repeat("A: b\n", 5000)
	tests := []struct {
		name   string
		input  string
		reason string
	}{
		{"content length beyond the cap", "Content-Type: api/response\nContent-Length: 2000000\n\n", ReasonFrameTooLarge},
		{"content length overflow", "Content-Length: 99999999999999999999\n\n", ReasonBadContentLength},
		{"negative content length", "Content-Length: -5\n\n", ReasonBadContentLength},
		{"content length not a number", "Content-Length: 12abc\n\n", ReasonBadContentLength},
		{"header without a name", "Content-Type: command/reply\nthis is no header\n\n", ReasonMalformedHeader},
		{"empty header name", ": value\n\n", ReasonMalformedHeader},
		{"endless header block", big, ReasonFrameTooLarge},
		{"too many headers", many + "\n", ReasonTooManyHeaders},
		{"body cut short", "Content-Type: api/response\nContent-Length: 100\n\nonly this", ReasonTruncated},
		{"header block cut short", "Content-Type: api/resp", ReasonTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input), Limits{})
			_, err := r.ReadMessage()
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Reason != tt.reason || !errors.Is(err, ErrFrame) {
				t.Fatalf("got %v, want a FrameError %s", err, tt.reason)
			}
			if _, again := r.ReadMessage(); again != err {
				t.Fatalf("error is not sticky: %v", again)
			}
			if len(r.buf) > DefaultLimits.MaxFrameBytes+1 {
				t.Fatalf("buffer grew to %d bytes past the frame cap", len(r.buf))
			}
		})
	}
}

func TestReaderLimitsAreConfigurable(t *testing.T) {
	frame := "Content-Type: api/response\nContent-Length: 600\n\n" + strings.Repeat("x", 600)
	if _, err := NewReader(strings.NewReader(frame), Limits{}).ReadMessage(); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	_, err := NewReader(strings.NewReader(frame), Limits{MaxFrameBytes: 512}).ReadMessage()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Reason != ReasonFrameTooLarge {
		t.Fatalf("512-byte cap: %v", err)
	}
	_, err = NewReader(strings.NewReader("A: 1\nB: 2\nC: 3\n\n"), Limits{MaxHeaders: 2}).ReadMessage()
	if !errors.As(err, &fe) || fe.Reason != ReasonTooManyHeaders {
		t.Fatalf("2-header cap: %v", err)
	}
}

// A well-framed event that does not decode is handed up with its error, and
// the frames after it are still read: one bad event never costs the
// connection.
func TestBadEventKeepsTheConnection(t *testing.T) {
	bad := "Event-Name: X\nno colon here\n\n"
	badJSON := `{"Event-Name": {"nested": 1}}`
	stream := "Content-Length: " + itoa(len(bad)) + "\nContent-Type: text/event-plain\n\n" + bad +
		"Content-Length: " + itoa(len(badJSON)) + "\nContent-Type: text/event-json\n\n" + badJSON +
		"Content-Type: text/something-new\nContent-Length: 3\n\nabc" +
		"Content-Type: command/reply\nReply-Text: +OK\n\n"
	r := NewReader(strings.NewReader(stream), Limits{})
	for i, wantType := range []string{TypeEventPlain, TypeEventJSON, "text/something-new", TypeCommandReply} {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m.Type != wantType {
			t.Fatalf("frame %d type %q want %q", i, m.Type, wantType)
		}
		_, evErr := m.Event()
		switch i {
		case 0, 1:
			if !errors.Is(evErr, ErrEventSyntax) {
				t.Fatalf("frame %d: event error %v", i, evErr)
			}
		default:
			if !errors.Is(evErr, ErrNotEvent) {
				t.Fatalf("frame %d: %v", i, evErr)
			}
		}
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestReaderToleratesCRLFAndStrayNewlines(t *testing.T) {
	r := NewReader(strings.NewReader("\n\r\nauth ClueCon\r\n\r\napi status\n\n"), Limits{})
	for _, want := range []string{"auth ClueCon", "api status"} {
		c, err := r.ReadCommand()
		if err != nil || c.Line != want {
			t.Fatalf("command %q: %v (got %+v)", want, err, c)
		}
	}
}

func TestInvalidUTF8IsHandedUp(t *testing.T) {
	body := "Event-Name: CUSTOM\nX-Bytes: %FF%FE\xff\n\n"
	frame := "Content-Length: " + itoa(len(body)) + "\nContent-Type: text/event-plain\n\n" + body
	m, err := NewReader(strings.NewReader(frame), Limits{}).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.Event()
	if err != nil || ev.Get("X-Bytes") != "\xff\xfe\xff" {
		t.Fatalf("event %v, %v", ev, err)
	}
}

func TestURLDecodeMatchesFreeSWITCH(t *testing.T) {
	tests := []struct{ in, want string }{
		{"%2B441234567890", "+441234567890"},
		{"a+b", "a+b"},     // '+' is not a space in switch_url_decode
		{"100%", "100%"},   // a lone '%' stays
		{"%zz%4", "%zz%4"}, // malformed escapes stay
		{"%3a%3A", "::"},
	}
	for _, tt := range tests {
		if got := URLDecode(tt.in); got != tt.want {
			t.Errorf("URLDecode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	enc := []struct{ in, want string }{
		{"Mon, 23 Nov 2026 05:03:08 GMT", "Mon,%2023%20Nov%202026%2005%3A03%3A08%20GMT"},
		{"loopback/busy-1/agents &park()", "loopback/busy-1/agents%20%26park()"},
		{"already%20encoded", "already%20encoded"},
		{"+1", "%2B1"},
	}
	for _, tt := range enc {
		if got := URLEncode(tt.in); got != tt.want {
			t.Errorf("URLEncode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendCommandRefusesInjection(t *testing.T) {
	tests := []struct {
		name string
		line string
		hdrs Headers
	}{
		{"newline in the command", "api status\n\napi hupall", nil},
		{"newline in a value", "sendmsg x", Headers{{"execute-app-arg", "a\n\napi hupall"}}},
		{"colon in a name", "sendmsg x", Headers{{"a:b", "c"}}},
		{"NUL in a value", "sendmsg x", Headers{{"a", "b\x00"}}},
		{"empty command", "", nil},
	}
	for _, tt := range tests {
		if _, err := AppendCommand(nil, tt.line, tt.hdrs, nil); !errors.Is(err, ErrInjection) {
			t.Errorf("%s: got %v", tt.name, err)
		}
	}
	got, err := AppendCommand(nil, "sendevent CUSTOM", Headers{{"Event-Subclass", "a::b"}}, []byte("hello"))
	if err != nil || string(got) != "sendevent CUSTOM\nEvent-Subclass: a::b\nContent-Length: 5\n\nhello" {
		t.Fatalf("%q %v", got, err)
	}
	c, err := NewReader(bytes.NewReader(got), Limits{}).ReadCommand()
	if err != nil || string(c.Body) != "hello" || c.Headers.Get("Event-Subclass") != "a::b" {
		t.Fatalf("round trip: %+v %v", c, err)
	}
}

func itoa(n int) string {
	return string(appendInt(nil, n))
}

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}
