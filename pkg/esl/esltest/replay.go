// Package esltest plays FreeSWITCH's side of a recorded ESL exchange over a
// real socket, for tests of anything that speaks ESL to FreeSWITCH: the
// bytes FreeSWITCH sent are sent again, exactly, and the commands the
// program under test sends are checked against the ones recorded.
package esltest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

// Replay is one recorded exchange ready to be played.
type Replay struct {
	t      testing.TB
	tr     *transcript.Transcript
	appIDs []string // recorded Application-UUIDs, in order of execution
	errs   chan error
	got    atomic.Int64
}

// New loads a transcript, e.g. New(t, "outbound/01-async-full-session").
func New(t testing.TB, name string) *Replay {
	t.Helper()
	tr, err := transcript.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	rp := &Replay{t: t, tr: tr, errs: make(chan error, 1)}
	r := esl.NewReader(bytes.NewReader(tr.Stream(transcript.FromFS)), esl.Limits{})
	for {
		m, err := r.ReadMessage()
		if err != nil {
			break
		}
		if ev, err := m.Event(); err == nil && ev.Name() == "CHANNEL_EXECUTE" && ev.Get("Application") != "socket" {
			rp.appIDs = append(rp.appIDs, ev.Get("Application-UUID"))
		}
	}
	return rp
}

// Received is how many commands the program has sent so far.
func (rp *Replay) Received() int { return int(rp.got.Load()) }

// Serve listens on loopback as FreeSWITCH's event socket (inbound
// exchanges) and plays to the first client; it returns the address.
func (rp *Replay) Serve() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rp.t.Fatal(err)
	}
	rp.t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			rp.errs <- err
			return
		}
		rp.errs <- rp.play(nc)
	}()
	return ln.Addr().String()
}

// Dial connects to addr as FreeSWITCH's socket application (outbound
// exchanges) and plays.
func (rp *Replay) Dial(addr string) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		rp.t.Fatal(err)
	}
	go func() { rp.errs <- rp.play(nc) }()
}

// Wait fails the test if the program strayed from the recording, or if the
// exchange did not finish within 10s.
func (rp *Replay) Wait() {
	rp.t.Helper()
	select {
	case err := <-rp.errs:
		if err != nil {
			rp.t.Fatalf("replay of %s: %v", rp.tr.Name, err)
		}
	case <-time.After(10 * time.Second):
		rp.t.Fatalf("replay of %s did not finish", rp.tr.Name)
	}
}

// play writes what FreeSWITCH wrote, and where the application spoke reads
// its commands and checks them. Event-UUIDs the application chooses
// replace, byte for byte, the Application-UUIDs FreeSWITCH generated in the
// recording (both are 36 characters, so every Content-Length stays true).
func (rp *Replay) play(nc net.Conn) error {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	rd := esl.NewReader(nc, esl.Limits{})
	var swaps []string // recorded, ours, recorded, ours...
	executes := 0
	for _, ch := range rp.tr.Chunks {
		switch {
		case ch.Dir == transcript.FromFS && len(ch.Bytes) == 0:
			return nil // FreeSWITCH closed here
		case ch.Dir == transcript.FromFS:
			out := ch.Bytes
			if len(swaps) > 0 {
				out = []byte(strings.NewReplacer(swaps...).Replace(string(out)))
			}
			if _, err := nc.Write(out); err != nil {
				return err
			}
		default:
			want := esl.NewReader(bytes.NewReader(ch.Bytes), esl.Limits{})
			for {
				w, err := want.ReadCommand()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				got, err := rd.ReadCommand()
				if err != nil {
					return fmt.Errorf("waiting for %q: %w", w.Line, err)
				}
				rp.got.Add(1)
				if id := got.Headers.Get("Event-UUID"); id != "" && executes < len(rp.appIDs) {
					swaps = append(swaps, rp.appIDs[executes], id)
					executes++
				}
				if err := SameCommand(got, w); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// SameCommand compares a command with a recorded one, ignoring the
// Event-UUID and Job-UUID headers a client adds to correlate, and the
// spelling of Content-Length.
func SameCommand(got, want *esl.Command) error {
	strip := func(h esl.Headers) []string {
		var out []string
		for _, x := range h {
			if x.Name == "Event-UUID" || x.Name == "Job-UUID" || strings.EqualFold(x.Name, "Content-Length") {
				continue
			}
			out = append(out, x.Name+": "+x.Value)
		}
		return out
	}
	g, w := strip(got.Headers), strip(want.Headers)
	if got.Line != want.Line || strings.Join(g, "\n") != strings.Join(w, "\n") || !bytes.Equal(got.Body, want.Body) {
		return fmt.Errorf("the program sent %q %q, the recording has %q %q", got.Line, g, want.Line, w)
	}
	return nil
}
