package fssim

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// Channel is one simulated call leg.
type Channel struct {
	sim       *Sim
	UUID      string
	name      string
	direction string
	created   time.Time

	ctx    context.Context // ends at hang-up: running applications stop
	cancel context.CancelFunc
	done   chan struct{} // closed once CHANNEL_HANGUP_COMPLETE has been sent

	mu         sync.Mutex
	state      string
	callState  string
	answeredAt time.Time
	hungupAt   time.Time
	cause      string
	profile    profile
	varNames   []string
	vars       map[string]string
	sessions   []*socketSession // sockets that asked for this channel's events
	bridgedTo  *Channel
	bLeg       *Channel // the leg this channel's bridge application dialled
	transfer   bool     // a transfer is pending: leave the applications, route again
	hangupOnce sync.Once

	answered chan struct{} // closed at CHANNEL_ANSWER
	dtmf     chan byte     // digits the caller pressed, not yet read by an application
	msgq     chan *message // applications queued by sendmsg
	brk      chan struct{} // uuid_break: stop the current playback
	Ended    chan struct{} // closed after the channel is destroyed
}

type profile struct {
	callerName, callerNumber, dest, context, dialplan, source string
}

func (s *Sim) newChannel(uuid, name, direction string, p profile, vars map[string]string) *Channel {
	if uuid == "" {
		uuid = esl.NewUUID()
	}
	ctx, cancel := context.WithCancel(s.ctx)
	c := &Channel{
		sim: s, UUID: uuid, name: name, direction: direction, created: time.Now(),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), Ended: make(chan struct{}), answered: make(chan struct{}),
		state: "CS_INIT", callState: "DOWN", profile: p, vars: map[string]string{},
		dtmf: make(chan byte, 64), msgq: make(chan *message, 256), brk: make(chan struct{}, 1),
	}
	c.setVarLocked("direction", direction)
	c.setVarLocked("uuid", uuid)
	c.setVarLocked("channel_name", name)
	for k, v := range vars {
		c.setVarLocked(k, v)
	}
	s.mu.Lock()
	s.channels[uuid] = c
	s.mu.Unlock()
	return c
}

// Done is closed once the channel has hung up and sent
// CHANNEL_HANGUP_COMPLETE.
func (c *Channel) Done() <-chan struct{} { return c.done }

// Cause is the hang-up cause ("" while the call lives).
func (c *Channel) Cause() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Answered reports whether the channel was answered.
func (c *Channel) Answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.answeredAt.IsZero()
}

// Var reads a channel variable.
func (c *Channel) Var(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vars[name]
	return v, ok
}

// SetVar sets a channel variable.
func (c *Channel) SetVar(name, value string) {
	c.mu.Lock()
	c.setVarLocked(name, value)
	c.mu.Unlock()
}

func (c *Channel) setVarLocked(name, value string) {
	if _, ok := c.vars[name]; !ok {
		c.varNames = append(c.varNames, name)
	}
	c.vars[name] = value
}

func (c *Channel) unsetVar(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vars[name]; !ok {
		return
	}
	delete(c.vars, name)
	for i, n := range c.varNames {
		if n == name {
			c.varNames = append(c.varNames[:i], c.varNames[i+1:]...)
			break
		}
	}
}

func (c *Channel) hungUp() bool {
	select {
	case <-c.ctx.Done():
		return true
	default:
		return false
	}
}

func micros(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// appendChannelHeaders adds the channel's state, caller profile and
// variables, in FreeSWITCH's order.
func (c *Channel) appendChannelHeaders(h esl.Headers, withVars bool) esl.Headers {
	c.mu.Lock()
	defer c.mu.Unlock()
	answerState := "ringing"
	switch {
	case !c.hungupAt.IsZero():
		answerState = "hangup"
	case !c.answeredAt.IsZero():
		answerState = "answered"
	}
	p := c.profile
	h = append(h,
		esl.Header{Name: "Channel-State", Value: c.state},
		esl.Header{Name: "Channel-Call-State", Value: c.callState},
		esl.Header{Name: "Channel-State-Number", Value: stateNumber(c.state)},
		esl.Header{Name: "Channel-Name", Value: c.name},
		esl.Header{Name: "Unique-ID", Value: c.UUID},
		esl.Header{Name: "Call-Direction", Value: c.direction},
		esl.Header{Name: "Presence-Call-Direction", Value: c.direction},
		esl.Header{Name: "Channel-HIT-Dialplan", Value: strconv.FormatBool(c.direction == "inbound")},
		esl.Header{Name: "Channel-Call-UUID", Value: c.UUID},
		esl.Header{Name: "Answer-State", Value: answerState},
		esl.Header{Name: "Channel-Read-Codec-Name", Value: "PCMU"},
		esl.Header{Name: "Channel-Read-Codec-Rate", Value: "8000"},
		esl.Header{Name: "Channel-Write-Codec-Name", Value: "PCMU"},
		esl.Header{Name: "Channel-Write-Codec-Rate", Value: "8000"},
		esl.Header{Name: "Caller-Direction", Value: c.direction},
		esl.Header{Name: "Caller-Logical-Direction", Value: c.direction},
		esl.Header{Name: "Caller-Dialplan", Value: p.dialplan},
		esl.Header{Name: "Caller-Caller-ID-Name", Value: p.callerName},
		esl.Header{Name: "Caller-Caller-ID-Number", Value: p.callerNumber},
		esl.Header{Name: "Caller-Orig-Caller-ID-Name", Value: p.callerName},
		esl.Header{Name: "Caller-Orig-Caller-ID-Number", Value: p.callerNumber},
		esl.Header{Name: "Caller-ANI", Value: p.callerNumber},
		esl.Header{Name: "Caller-Destination-Number", Value: p.dest},
		esl.Header{Name: "Caller-Unique-ID", Value: c.UUID},
		esl.Header{Name: "Caller-Source", Value: p.source},
		esl.Header{Name: "Caller-Context", Value: p.context},
		esl.Header{Name: "Caller-Channel-Name", Value: c.name},
		esl.Header{Name: "Caller-Profile-Index", Value: "1"},
		esl.Header{Name: "Caller-Profile-Created-Time", Value: micros(c.created)},
		esl.Header{Name: "Caller-Channel-Created-Time", Value: micros(c.created)},
		esl.Header{Name: "Caller-Channel-Answered-Time", Value: micros(c.answeredAt)},
		esl.Header{Name: "Caller-Channel-Progress-Time", Value: "0"},
		esl.Header{Name: "Caller-Channel-Progress-Media-Time", Value: "0"},
		esl.Header{Name: "Caller-Channel-Hangup-Time", Value: micros(c.hungupAt)},
		esl.Header{Name: "Caller-Channel-Transfer-Time", Value: "0"},
		esl.Header{Name: "Caller-Channel-Resurrect-Time", Value: "0"},
		esl.Header{Name: "Caller-Channel-Bridged-Time", Value: "0"},
		esl.Header{Name: "Caller-Channel-Last-Hold", Value: "0"},
		esl.Header{Name: "Caller-Channel-Hold-Accum", Value: "0"},
		esl.Header{Name: "Caller-Screen-Bit", Value: "true"},
		esl.Header{Name: "Caller-Privacy-Hide-Name", Value: "false"},
		esl.Header{Name: "Caller-Privacy-Hide-Number", Value: "false"},
	)
	if withVars {
		for _, n := range c.varNames {
			h = append(h, esl.Header{Name: "variable_" + n, Value: c.vars[n]})
		}
	}
	return h
}

func stateNumber(state string) string {
	switch state {
	case "CS_NEW":
		return "0"
	case "CS_INIT":
		return "1"
	case "CS_ROUTING":
		return "2"
	case "CS_SOFT_EXECUTE":
		return "3"
	case "CS_EXECUTE":
		return "4"
	case "CS_EXCHANGE_MEDIA":
		return "5"
	case "CS_PARK":
		return "6"
	case "CS_HANGUP":
		return "10"
	case "CS_REPORTING":
		return "11"
	case "CS_DESTROY":
		return "12"
	}
	return "4"
}

// fireChannelEvent sends a channel event with its state, profile and
// variables, plus extra headers.
func (c *Channel) fireChannelEvent(name, file, function string, line int, extra ...esl.Header) {
	ev := c.sim.newEvent(name, file, function, line)
	ev.Headers = c.appendChannelHeaders(ev.Headers, true)
	ev.Headers = append(ev.Headers, extra...)
	c.sim.fire(ev)
}

// deliver hands an event of this channel to the sockets that want it.
func (c *Channel) deliver(ev *esl.Event) {
	c.mu.Lock()
	sessions := append([]*socketSession(nil), c.sessions...)
	c.mu.Unlock()
	for _, s := range sessions {
		s.offer(ev)
	}
}

func (c *Channel) addSession(s *socketSession) {
	c.mu.Lock()
	c.sessions = append(c.sessions, s)
	c.mu.Unlock()
}

func (c *Channel) removeSession(s *socketSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.sessions {
		if x == s {
			c.sessions = append(c.sessions[:i], c.sessions[i+1:]...)
			return
		}
	}
}

// Answer answers the channel (CHANNEL_ANSWER) if it is not yet.
func (c *Channel) Answer() {
	c.mu.Lock()
	if !c.answeredAt.IsZero() || !c.hungupAt.IsZero() {
		c.mu.Unlock()
		return
	}
	c.answeredAt = time.Now()
	c.callState = "ACTIVE"
	c.mu.Unlock()
	c.fireChannelEvent("CHANNEL_ANSWER", "switch_channel.c", "switch_channel_perform_mark_answered", 3840)
	// Only now may the caller act on the answer (press digits): its DTMF
	// events must follow CHANNEL_ANSWER, as on a real line.
	close(c.answered)
}

// Hangup hangs the channel up with cause: CHANNEL_HANGUP now; running
// applications stop; CHANNEL_HANGUP_COMPLETE follows from the channel's
// thread. A second hang-up does nothing.
func (c *Channel) Hangup(cause string) {
	if cause == "" {
		cause = "NORMAL_CLEARING"
	}
	c.hangupOnce.Do(func() {
		c.mu.Lock()
		c.cause = cause
		c.hungupAt = time.Now()
		c.state = "CS_HANGUP"
		c.callState = "HANGUP"
		c.setVarLocked("hangup_cause", cause)
		c.setVarLocked("hangup_cause_q850", strconv.Itoa(q850(cause)))
		other, bLeg := c.bridgedTo, c.bLeg
		c.mu.Unlock()
		c.fireChannelEvent("CHANNEL_HANGUP", "switch_channel.c", "switch_channel_perform_hangup", 3638,
			esl.Header{Name: "Hangup-Cause", Value: cause})
		c.cancel()
		if other != nil {
			c.unbridge(other)
		}
		// The leg a bridge dialled goes with its caller; the caller lives
		// on when that leg hangs up (hangup_after_bridge is off by default).
		if bLeg != nil {
			bLeg.Hangup(cause)
		}
	})
}

// finish sends CHANNEL_HANGUP_COMPLETE and CHANNEL_DESTROY and forgets the
// channel; the channel's thread calls it when its applications are done.
func (c *Channel) finish() {
	c.Hangup("NORMAL_CLEARING")
	c.mu.Lock()
	end := c.hungupAt
	created, answered := c.created, c.answeredAt
	c.setVarLocked("end_epoch", strconv.FormatInt(end.Unix(), 10))
	c.setVarLocked("duration", strconv.Itoa(int(end.Sub(created).Seconds())))
	c.setVarLocked("mduration", strconv.FormatInt(end.Sub(created).Milliseconds(), 10))
	bill := time.Duration(0)
	if !answered.IsZero() {
		bill = end.Sub(answered)
		c.setVarLocked("answersec", strconv.Itoa(int(answered.Sub(created).Seconds())))
		c.setVarLocked("answermsec", strconv.FormatInt(answered.Sub(created).Milliseconds(), 10))
		c.setVarLocked("endpoint_disposition", "ANSWER")
	}
	c.setVarLocked("billsec", strconv.Itoa(int(bill.Seconds())))
	c.setVarLocked("billmsec", strconv.FormatInt(bill.Milliseconds(), 10))
	c.state = "CS_REPORTING"
	cause := c.cause
	c.mu.Unlock()
	c.fireChannelEvent("CHANNEL_HANGUP_COMPLETE", "switch_core_state_machine.c", "switch_core_session_reporting_state", 945,
		esl.Header{Name: "Hangup-Cause", Value: cause})
	close(c.done)
	c.mu.Lock()
	c.state = "CS_DESTROY"
	c.mu.Unlock()
	c.fireChannelEvent("CHANNEL_DESTROY", "switch_core_session.c", "switch_core_session_perform_destroy", 1606)
	c.sim.mu.Lock()
	delete(c.sim.channels, c.UUID)
	c.sim.mu.Unlock()
	close(c.Ended)
}

func q850(cause string) int {
	switch cause {
	case "NORMAL_CLEARING", "MANAGER_REQUEST":
		return 16
	case "USER_BUSY":
		return 17
	case "NO_USER_RESPONSE":
		return 18
	case "NO_ANSWER":
		return 19
	case "SUBSCRIBER_ABSENT":
		return 20
	case "CALL_REJECTED":
		return 21
	case "NO_ROUTE_DESTINATION":
		return 3
	case "ORIGINATOR_CANCEL":
		return 487
	case "NORMAL_TEMPORARY_FAILURE":
		return 41
	}
	return 0
}

// PressDigits is the caller pressing keys: a DTMF event per digit, and the
// digits wait for an application that collects them.
func (c *Channel) PressDigits(digits string) {
	for i := 0; i < len(digits); i++ {
		if c.hungUp() {
			return
		}
		select {
		case c.dtmf <- digits[i]:
		default: // FreeSWITCH's DTMF queue is bounded too
		}
		ev := c.sim.newEvent("DTMF", "switch_channel.c", "switch_channel_dequeue_dtmf", 678)
		ev.Headers = append(ev.Headers,
			esl.Header{Name: "Unique-ID", Value: c.UUID},
			esl.Header{Name: "Call-Direction", Value: c.direction},
			esl.Header{Name: "Presence-Call-Direction", Value: c.direction},
			esl.Header{Name: "Answer-State", Value: "answered"},
			esl.Header{Name: "DTMF-Digit", Value: string(digits[i])},
			esl.Header{Name: "DTMF-Duration", Value: "2000"},
			esl.Header{Name: "DTMF-Source", Value: "RTP"},
		)
		c.sim.fire(ev)
	}
}

func (c *Channel) bridge(other *Channel) {
	c.sim.bridgeMu.Lock()
	defer c.sim.bridgeMu.Unlock()
	c.mu.Lock()
	c.bridgedTo = other
	c.mu.Unlock()
	other.mu.Lock()
	other.bridgedTo = c
	other.mu.Unlock()
	for _, pair := range [][2]*Channel{{c, other}, {other, c}} {
		pair[0].fireChannelEvent("CHANNEL_BRIDGE", "switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1700,
			esl.Header{Name: "Bridge-A-Unique-ID", Value: c.UUID},
			esl.Header{Name: "Bridge-B-Unique-ID", Value: other.UUID},
			esl.Header{Name: "Other-Leg-Unique-ID", Value: pair[1].UUID})
	}
}

func (c *Channel) unbridge(other *Channel) {
	c.sim.bridgeMu.Lock()
	defer c.sim.bridgeMu.Unlock()
	c.mu.Lock()
	was := c.bridgedTo == other
	c.bridgedTo = nil
	c.mu.Unlock()
	if !was {
		return
	}
	other.mu.Lock()
	if other.bridgedTo == c {
		other.bridgedTo = nil
	}
	other.mu.Unlock()
	for _, pair := range [][2]*Channel{{c, other}, {other, c}} {
		pair[0].fireChannelEvent("CHANNEL_UNBRIDGE", "switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1750,
			esl.Header{Name: "Bridge-A-Unique-ID", Value: c.UUID},
			esl.Header{Name: "Bridge-B-Unique-ID", Value: other.UUID},
			esl.Header{Name: "Other-Leg-Unique-ID", Value: pair[1].UUID})
	}
}
