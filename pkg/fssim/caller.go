package fssim

import (
	"context"
	"errors"
	"time"
)

// CallSpec is a simulated caller: whom they call and what they do.
type CallSpec struct {
	Destination    string
	CallerIDNumber string
	CallerIDName   string
	Context        string            // default "default"
	Variables      map[string]string // set on the channel before the dialplan runs
	UUID           string            // "" draws one
	// Digits are pressed DigitsAfter after the call is answered.
	Digits      string
	DigitsAfter time.Duration
	// HangupAfter hangs up this long after the call starts (0: the caller
	// waits for the other side).
	HangupAfter time.Duration
}

// ErrClosed is returned once the simulator is closed.
var ErrClosed = errors.New("fssim: closed")

// PlaceCall starts an inbound call that runs the dialplan for its
// destination, as a call from a SIP phone would. The returned channel
// reports its end (Done, Cause).
func (s *Sim) PlaceCall(ctx context.Context, spec CallSpec) (*Channel, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if spec.Context == "" {
		spec.Context = "default"
	}
	if spec.CallerIDName == "" {
		spec.CallerIDName = spec.CallerIDNumber
	}
	p := profile{callerName: spec.CallerIDName, callerNumber: spec.CallerIDNumber, dest: spec.Destination,
		context: spec.Context, dialplan: "XML", source: "mod_sofia"}
	c := s.newChannel(spec.UUID, "sofia/internal/"+spec.CallerIDNumber+"@"+s.opts.Hostname, "inbound", p, spec.Variables)
	c.fireChannelEvent("CHANNEL_CREATE", "switch_core_state_machine.c", "switch_core_session_run", 626)
	s.goroutine(func() { c.run(nil) })
	if spec.Digits != "" {
		s.goroutine(func() {
			select {
			case <-c.answered:
			case <-c.ctx.Done():
				return
			}
			if s.sleep(c.ctx, spec.DigitsAfter) {
				c.PressDigits(spec.Digits)
			}
		})
	}
	if spec.HangupAfter > 0 {
		s.goroutine(func() {
			if s.sleep(c.ctx, spec.HangupAfter) {
				c.Hangup("NORMAL_CLEARING")
			}
		})
	}
	return c, nil
}
