package esl

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

// chunkReader replays recorded TCP reads with their original boundaries, so
// frames split across reads are framed exactly as on a live socket.
type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func recordedReader(tr *transcript.Transcript, dir string) io.Reader {
	cr := &chunkReader{}
	for _, ch := range tr.Chunks {
		if ch.Dir == dir {
			cr.chunks = append(cr.chunks, append([]byte(nil), ch.Bytes...))
		}
	}
	return cr
}

func readAll(t *testing.T, r io.Reader) []*Message {
	t.Helper()
	rd := NewReader(r, Limits{})
	var out []*Message
	for {
		m, err := rd.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		out = append(out, m)
	}
}

func loadTranscript(t testing.TB, name string) *transcript.Transcript {
	t.Helper()
	tr, err := transcript.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Every recorded exchange frames completely in both directions, every event
// decodes, and FreeSWITCH's side frames the same whether it arrives in the
// recorded reads or one byte at a time.
func TestTranscriptsFrameCompletely(t *testing.T) {
	names, err := transcript.All()
	if err != nil || len(names) < 19 {
		t.Fatalf("transcripts: %v (found %d, want 19)", err, len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			tr := loadTranscript(t, name)
			msgs := readAll(t, recordedReader(tr, transcript.FromFS))
			if len(msgs) == 0 {
				t.Fatal("no frames")
			}
			for i, m := range msgs {
				if _, err := m.Event(); err != nil && !errors.Is(err, ErrNotEvent) {
					t.Errorf("frame %d (%s): %v", i, m.Type, err)
				}
			}
			slow := readAll(t, oneByteReader{bytes.NewReader(tr.Stream(transcript.FromFS))})
			if len(slow) != len(msgs) {
				t.Fatalf("one byte at a time: %d frames, recorded reads: %d", len(slow), len(msgs))
			}
			for i := range msgs {
				if msgs[i].Type != slow[i].Type || !bytes.Equal(msgs[i].Body, slow[i].Body) {
					t.Fatalf("frame %d differs when read one byte at a time", i)
				}
			}
			cr := NewReader(recordedReader(tr, transcript.ToFS), Limits{})
			for {
				c, err := cr.ReadCommand()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("command: %v", err)
				}
				if c.Verb() == "" {
					t.Fatalf("command without a verb: %q", c.Line)
				}
			}
		})
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// frameSummary is what a test asserts of one frame: its type, and its result
// or event name.
func frameSummary(m *Message) string {
	switch m.Type {
	case TypeCommandReply, TypeAPIResponse:
		return m.Type + " " + m.Result()
	case TypeEventPlain, TypeEventJSON, TypeEventXML:
		ev, _ := m.Event()
		return "event " + ev.Name()
	case TypeDisconnectNotice, TypeRudeRejection:
		return m.Type + " " + strings.TrimSpace(string(m.Body))
	}
	return m.Type
}

func summaries(msgs []*Message, skipEvents bool) []string {
	var out []string
	for _, m := range msgs {
		s := frameSummary(m)
		if skipEvents && strings.HasPrefix(s, "event ") {
			continue
		}
		out = append(out, s)
	}
	return out
}

const goodbye = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/"

// The replies FreeSWITCH gave, in order, with events left out; each line is a
// protocol fact the client and the simulator rely on.
func TestTranscriptReplies(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"inbound/01-auth-ok", []string{"auth/request", "command/reply +OK accepted"}},
		{"inbound/02-auth-wrong-password", []string{"auth/request", "command/reply -ERR invalid", "text/disconnect-notice " + goodbye}},
		{"inbound/04-api-originate", []string{"auth/request", "command/reply +OK accepted",
			"api/response +OK f82403e9-7419-4c65-bc27-d00b45b7f7b6", "api/response -ERR NO_ROUTE_DESTINATION",
			"api/response -ERR NO_ANSWER", "api/response -ERR NORMAL_CLEARING", "api/response -ERR CHAN_NOT_IMPLEMENTED",
			"api/response -ERR SUBSCRIBER_ABSENT", "api/response +OK"}},
		{"inbound/09-filter-nixevent-noevents", []string{"auth/request", "command/reply +OK accepted",
			"command/reply +OK event listener enabled plain",
			"command/reply +OK filter added. [Unique-ID]=[22222222-2222-4333-8444-555555555555]",
			"api/response +OK 22222222-2222-4333-8444-555555555555", "api/response +OK bc9aa4ff-4d95-45b5-aa1a-5d585409cae2",
			"command/reply +OK filter deleted. [Unique-ID][22222222-2222-4333-8444-555555555555]",
			"command/reply +OK events nixed", "command/reply +OK no longer listening for events",
			"api/response +OK hangup all channels with cause NORMAL_CLEARING"}},
		{"inbound/12-api-unknown-command", []string{"auth/request", "command/reply +OK accepted", "api/response -ERR no_such_command Command not found!"}},
		{"inbound/14-exit", []string{"auth/request", "command/reply +OK accepted", "command/reply +OK bye", "text/disconnect-notice " + goodbye}},
		{"inbound/17-acl-rude-rejection", []string{"text/rude-rejection Access Denied, go away.", "text/disconnect-notice " + goodbye}},
		{"outbound/02-sync-session", []string{"command/reply +OK\n", "command/reply +OK Events Enabled", "command/reply +OK",
			"command/reply -ERR command not found", "command/reply +OK", "command/reply +OK", "text/disconnect-notice " + goodbye}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summaries(readAll(t, recordedReader(loadTranscript(t, tt.name), transcript.FromFS)), true)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("replies:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func eventsOf(t *testing.T, name string) []*Event {
	t.Helper()
	var evs []*Event
	for _, m := range readAll(t, recordedReader(loadTranscript(t, name), transcript.FromFS)) {
		if ev, err := m.Event(); err == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

func TestBackgroundJobCorrelation(t *testing.T) {
	msgs := readAll(t, recordedReader(loadTranscript(t, "inbound/05-bgapi"), transcript.FromFS))
	jobs := map[string]string{} // Job-UUID from the reply → result from the event
	var order []string
	for _, m := range msgs {
		if m.Type == TypeCommandReply && m.Headers.Get("Job-UUID") != "" {
			id := m.Headers.Get("Job-UUID")
			if m.ReplyText() != "+OK Job-UUID: "+id {
				t.Fatalf("bgapi reply %q does not carry its Job-UUID %s", m.ReplyText(), id)
			}
			order = append(order, id)
		}
		if ev, err := m.Event(); err == nil && ev.Name() == "BACKGROUND_JOB" {
			jobs[ev.Get("Job-UUID")] = string(ev.Body)
		}
	}
	if len(order) != 3 {
		t.Fatalf("bgapi replies: %d, want 3", len(order))
	}
	if order[1] != "d8c7f660-37a6-4e73-9170-1a731c442148" {
		t.Errorf("caller-chosen Job-UUID not echoed: %s", order[1])
	}
	for _, id := range order[:2] {
		if !strings.HasPrefix(jobs[id], "UP 0 years") {
			t.Errorf("job %s result %q, want the status text", id, jobs[id])
		}
	}
	if jobs[order[2]] != "-ERR NORMAL_CLEARING\n" {
		t.Errorf("originate job result %q", jobs[order[2]])
	}
}

func TestPlainEventDecoding(t *testing.T) {
	evs := eventsOf(t, "inbound/06-events-plain-call")
	var create *Event
	var names []string
	for _, ev := range evs {
		// DTMF sent to the A leg arrives on the loopback B leg.
		if ev.UniqueID() == "11111111-2222-4333-8444-555555555555" || ev.Name() == "DTMF" {
			names = append(names, ev.Name())
			if ev.Name() == "CHANNEL_CREATE" && create == nil {
				create = ev
			}
		}
	}
	for _, want := range []string{"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "DTMF", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"} {
		if !contains(names, want) {
			t.Errorf("call has no %s event (got %v)", want, names)
		}
	}
	if create == nil {
		t.Fatal("no CHANNEL_CREATE")
	}
	if got := create.Get("FreeSWITCH-IPv6"); got != "fd00::2" {
		t.Errorf("URL-decoding: FreeSWITCH-IPv6 = %q", got)
	}
	if got := create.Get("Event-Date-GMT"); !strings.HasPrefix(got, "Mon, 23 Nov 2026 ") {
		t.Errorf("Event-Date-GMT = %q", got)
	}
	// FreeSWITCH's spelling is kept; Go's canonical form is not invented.
	if create.Headers[0].Name != "Event-Name" || !hasName(create.Headers, "Unique-ID") || hasName(create.Headers, "Unique-Id") {
		t.Errorf("header names not kept as sent")
	}
	var dtmf *Event
	for _, ev := range evs {
		if ev.Name() == "DTMF" {
			dtmf = ev
			break
		}
	}
	if dtmf == nil || dtmf.Get("DTMF-Digit") != "1" {
		t.Fatalf("first DTMF event: %+v", dtmf)
	}
}

// The same call recorded as plain and as JSON decodes to the same events.
func TestPlainAndJSONAgree(t *testing.T) {
	const call = "11111111-2222-4333-8444-555555555555"
	pick := func(name string) map[string]*Event {
		out := map[string]*Event{}
		for _, ev := range eventsOf(t, name) {
			if ev.UniqueID() == call {
				if _, seen := out[ev.Name()]; !seen {
					out[ev.Name()] = ev
				}
			}
		}
		return out
	}
	plain, js := pick("inbound/06-events-plain-call"), pick("inbound/07-events-json-call")
	if len(plain) == 0 || len(plain) != len(js) {
		t.Fatalf("plain has %d event kinds, json %d", len(plain), len(js))
	}
	for name, p := range plain {
		j := js[name]
		if j == nil {
			t.Fatalf("json lacks %s", name)
		}
		for _, h := range []string{"Caller-Caller-ID-Number", "Channel-Name", "Answer-State", "Call-Direction", "Channel-State"} {
			if p.Get(h) != j.Get(h) {
				t.Errorf("%s %s: plain %q json %q", name, h, p.Get(h), j.Get(h))
			}
		}
	}
}

func TestXMLEventDecoding(t *testing.T) {
	evs := eventsOf(t, "inbound/08-events-xml")
	// Both loopback legs are created and hung up: four events.
	var names []string
	for _, ev := range evs {
		names = append(names, ev.Name())
	}
	if strings.Join(names, " ") != "CHANNEL_CREATE CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE CHANNEL_HANGUP_COMPLETE" {
		t.Fatalf("xml events: %v", names)
	}
	if got := evs[0].Get("FreeSWITCH-IPv6"); got != "fd00::2" {
		t.Errorf("xml values are URL-decoded: got %q", got)
	}
	if evs[0].UniqueID() != "fff8b5c1-0961-4227-8b3d-dbe5842eb9fa" {
		t.Errorf("Unique-ID %q", evs[0].UniqueID())
	}
}

func TestExecuteCompleteCarriesResult(t *testing.T) {
	type done struct{ app, resp string }
	byUUID := map[string]done{}
	for _, ev := range eventsOf(t, "outbound/01-async-full-session") {
		if ev.Name() == "CHANNEL_EXECUTE_COMPLETE" {
			byUUID[ev.Get("Application-UUID")] = done{ev.Get("Application"), ev.Get("Application-Response")}
		}
	}
	want := map[string]done{
		"4a3a21ea-01b7-4be7-87e4-00e19a44f850": {"playback", "FILE PLAYED"},
		"bc1f4333-d364-440d-be75-0cea80f3a613": {"playback", "FILE NOT FOUND"},
		"25977613-2530-4350-a8ec-2ce6267ffd36": {"play_and_get_digits", "_none_"},
	}
	for id, w := range want {
		if byUUID[id] != w {
			t.Errorf("Application-UUID %s: got %+v want %+v", id, byUUID[id], w)
		}
	}
}

func TestOutboundConnectReply(t *testing.T) {
	for _, name := range []string{"outbound/01-async-full-session", "outbound/02-sync-session"} {
		msgs := readAll(t, recordedReader(loadTranscript(t, name), transcript.FromFS))
		m := msgs[0]
		if m.Type != TypeCommandReply || m.Headers.Get("Content-Length") != "" {
			t.Fatalf("%s: connect reply type %q", name, m.Type)
		}
		if m.ReplyText() != "%2BOK%0A" || !m.OK() {
			t.Errorf("%s: connect Reply-Text %q is URL-encoded +OK", name, m.ReplyText())
		}
		cd := m.ChannelData()
		if cd.Get("Caller-Caller-ID-Number") != "+441234567890" || cd.Get("Channel-Caller-ID-Name") != "Alice" {
			t.Errorf("%s: channel data caller %q", name, cd.Get("Caller-Caller-ID-Number"))
		}
		mode, control := m.Headers.Get("Socket-Mode"), m.Headers.Get("Control")
		wantMode, wantControl := "async", "full"
		if strings.Contains(name, "sync-session") {
			wantMode, wantControl = "static", "single-channel"
		}
		if mode != wantMode || control != wantControl {
			t.Errorf("%s: Socket-Mode %q Control %q", name, mode, control)
		}
		last := msgs[len(msgs)-1]
		if name == "outbound/01-async-full-session" {
			last = msgs[len(msgs)-2] // the reply to the last sendmsg trails the notice
			if last.Headers.Get("Content-Disposition") != "linger" || last.Headers.Get("Linger-Time") != "-1" {
				t.Errorf("linger notice headers: %v", last.Headers)
			}
		} else if last.Headers.Get("Content-Disposition") != "disconnect" {
			t.Errorf("sync notice headers: %v", last.Headers)
		}
		if last.Type != TypeDisconnectNotice {
			t.Errorf("%s: want a disconnect notice, got %s", name, last.Type)
		}
	}
}

func TestLogData(t *testing.T) {
	var logs int
	for _, m := range readAll(t, recordedReader(loadTranscript(t, "inbound/11-log-data"), transcript.FromFS)) {
		if m.Type == TypeLogData {
			logs++
			if m.Headers.Get("Log-Level") == "" || m.Headers.Get("Log-File") == "" || len(m.Body) == 0 {
				t.Errorf("log/data frame lacks its headers or text: %v", m.Headers)
			}
		}
	}
	if logs != 16 {
		t.Errorf("log frames: %d, want 16", logs)
	}
}

func TestSendeventBody(t *testing.T) {
	for _, ev := range eventsOf(t, "inbound/10-sendevent") {
		if ev.Get("Event-Subclass") == "switchyard::test" {
			if string(ev.Body) != "hello body" || ev.Get("X-Key") != "some value" {
				t.Fatalf("sendevent echo: body %q X-Key %q", ev.Body, ev.Get("X-Key"))
			}
			return
		}
	}
	t.Fatal("sendevent not echoed")
}

// Re-encoding a decoded event gives FreeSWITCH's bytes back: the encoders
// the simulator uses are as faithful as the decoder.
func TestEncodersReproduceFreeSWITCHBytes(t *testing.T) {
	for _, tc := range []struct{ name, typ string }{
		{"inbound/06-events-plain-call", TypeEventPlain},
		{"inbound/07-events-json-call", TypeEventJSON},
		{"outbound/01-async-full-session", TypeEventPlain},
		{"inbound/05-bgapi", TypeEventPlain},
	} {
		n := 0
		r := NewReader(bytes.NewReader(loadTranscript(t, tc.name).Stream(transcript.FromFS)), Limits{})
		for {
			raw, err := r.readFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if raw.Type != tc.typ {
				continue
			}
			wire := append([]byte(nil), raw.Body...) // decoding happens in place
			raw.decodeEvent(r.lim)
			ev, err := raw.Event()
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if tc.typ == TypeEventJSON {
				got = AppendJSONEventBody(nil, ev)
			} else {
				got = AppendPlainEventBody(nil, ev)
			}
			if !bytes.Equal(got, wire) {
				t.Fatalf("%s %s: re-encoded differs\n got %.300q\nwant %.300q", tc.name, ev.Name(), got, wire)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("%s: no %s events", tc.name, tc.typ)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func hasName(h Headers, name string) bool {
	for _, x := range h {
		if x.Name == name {
			return true
		}
	}
	return false
}
