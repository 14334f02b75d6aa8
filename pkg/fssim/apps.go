package fssim

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// message is a sendmsg for a channel: an application to execute, or a
// hang-up.
type message struct {
	app, arg    string
	appUUID     string
	loops       int
	hangupCause string          // call-command: hangup
	done        chan *esl.Event // gets the CHANNEL_EXECUTE_COMPLETE (nil for a hang-up)
	// after runs on the channel's thread once the message is processed,
	// before anything else happens to the channel: a static socket's reply
	// goes out before, say, the disconnect a transfer causes.
	after func()
}

// process runs one message on the channel's thread.
func (c *Channel) process(m *message) {
	if m.after != nil {
		defer m.after()
	}
	if m.hangupCause != "" {
		c.Hangup(m.hangupCause)
		if m.done != nil {
			m.done <- nil
		}
		return
	}
	var ev *esl.Event
	for i := 0; i < max(m.loops, 1) && !c.hungUp(); i++ {
		ev = c.execute(m.app, m.arg, m.appUUID)
	}
	if m.done != nil {
		m.done <- ev
	}
}

// execute runs one application: CHANNEL_EXECUTE, the application,
// CHANNEL_EXECUTE_COMPLETE carrying its Application-UUID and response.
func (c *Channel) execute(app, arg, appUUID string) *esl.Event {
	if appUUID == "" {
		appUUID = esl.NewUUID()
	}
	c.mu.Lock()
	c.state = "CS_EXECUTE"
	c.setVarLocked("current_application_data", arg)
	c.setVarLocked("current_application", app)
	c.mu.Unlock()
	appHeaders := []esl.Header{{Name: "Application", Value: app}}
	if arg != "" {
		appHeaders = append(appHeaders, esl.Header{Name: "Application-Data", Value: arg})
	}
	c.fireChannelEvent("CHANNEL_EXECUTE", "switch_core_session.c", "switch_core_session_exec", 2855,
		append(appHeaders, esl.Header{Name: "Application-UUID", Value: appUUID})...)
	resp := c.runApp(app, arg)
	ev := c.sim.newEvent("CHANNEL_EXECUTE_COMPLETE", "switch_core_session.c", "switch_core_session_exec", 2895)
	ev.Headers = c.appendChannelHeaders(ev.Headers, true)
	ev.Headers = append(ev.Headers, appHeaders...)
	ev.Headers = append(ev.Headers, esl.Header{Name: "Application-Response", Value: resp}, esl.Header{Name: "Application-UUID", Value: appUUID})
	c.sim.fire(ev)
	return ev
}

// waitMedia lets time pass inside a media application: queued messages run,
// a hang-up or uuid_break ends it early, and so does a digit when digits
// interrupts. It reports why it returned: "done", "hangup", "break" or
// "digit".
func (c *Channel) waitMedia(d time.Duration, digits bool) string {
	t := time.NewTimer(c.sim.scaled(d))
	defer t.Stop()
	for {
		var dtmf chan byte
		if digits && len(c.dtmf) > 0 {
			return "digit"
		}
		if digits {
			dtmf = c.dtmf
		}
		select {
		case <-t.C:
			return "done"
		case <-c.ctx.Done():
			return "hangup"
		case <-c.brk:
			return "break"
		case m := <-c.msgq:
			c.process(m)
		case d := <-dtmf:
			// Put it back for the collector; channel order is kept because
			// nothing else reads c.dtmf concurrently.
			c.unread(d)
			return "digit"
		}
	}
}

// unread returns a digit to the front of the queue.
func (c *Channel) unread(d byte) {
	rest := []byte{d}
	for len(c.dtmf) > 0 {
		rest = append(rest, <-c.dtmf)
	}
	for _, x := range rest {
		c.dtmf <- x
	}
}

func (c *Channel) isMissing(file string) bool {
	return strings.HasPrefix(file, "/nonexistent") || strings.HasPrefix(file, "missing/")
}

// runApp runs an application and returns its Application-Response.
func (c *Channel) runApp(app, arg string) string {
	switch app {
	case "answer", "pre_answer", "ring_ready":
		if app == "answer" {
			c.Answer()
		}
		return "_none_"
	case "playback", "endless_playback":
		if c.isMissing(arg) {
			return "FILE NOT FOUND"
		}
		c.waitMedia(c.sim.opts.PlaybackDuration, false)
		return "FILE PLAYED"
	case "sleep":
		ms, _ := strconv.Atoi(strings.TrimSpace(arg))
		c.waitMedia(time.Duration(ms)*time.Millisecond, false)
		return "_none_"
	case "play_and_get_digits":
		c.playAndGetDigits(arg)
		return "_none_"
	case "read":
		c.read(arg)
		return "_none_"
	case "set", "export":
		name, value, _ := strings.Cut(arg, "=")
		if value == "" {
			c.unsetVar(name)
		} else {
			c.SetVar(name, value)
		}
		return "_none_"
	case "unset":
		c.unsetVar(arg)
		return "_none_"
	case "hangup":
		c.Hangup(strings.TrimSpace(arg))
		return "_none_"
	case "park", "echo":
		c.mu.Lock()
		c.state = "CS_PARK"
		c.mu.Unlock()
		if app == "park" {
			c.fireChannelEvent("CHANNEL_PARK", "switch_ivr.c", "switch_ivr_park", 997)
		}
		for !c.hungUp() && !c.transferring() {
			c.waitMedia(time.Hour, false)
		}
		return "_none_"
	case "bridge":
		c.bridgeTo(arg)
		return "_none_"
	case "transfer":
		c.requestTransfer(arg)
		return "_none_"
	case "record":
		fields := strings.Fields(arg)
		limit := 5 * time.Second
		if len(fields) > 1 {
			if s, err := strconv.Atoi(fields[1]); err == nil {
				limit = time.Duration(s) * time.Second
			}
		}
		start := time.Now()
		c.waitMedia(limit, true)
		c.SetVar("record_ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
		return "_none_"
	case "respond":
		if c.Answered() {
			return "_none_"
		}
		cause := "NORMAL_CLEARING"
		switch strings.Fields(arg + " x")[0] {
		case "486":
			cause = "USER_BUSY"
		case "603":
			cause = "CALL_REJECTED"
		case "480":
			cause = "NO_USER_RESPONSE"
		}
		c.Hangup(cause)
		return "_none_"
	case "break", "log", "info", "ring":
		return "_none_"
	}
	c.sim.opts.Logger.Warn("fssim: invalid application", "app", app, "uuid", c.UUID)
	return "INVALID_APPLICATION"
}

// playAndGetDigits implements
// "min max tries timeout terminators file invalid_file var regexp [digit_timeout]".
func (c *Channel) playAndGetDigits(arg string) {
	f := strings.Fields(arg)
	if len(f) < 9 {
		return
	}
	minD, _ := strconv.Atoi(f[0])
	maxD, _ := strconv.Atoi(f[1])
	tries, _ := strconv.Atoi(f[2])
	timeout, _ := strconv.Atoi(f[3])
	terminators, varName := f[4], f[7]
	re, err := regexp.Compile(f[8])
	if err != nil {
		re = regexp.MustCompile(`.*`)
	}
	digitTimeout := timeout
	if len(f) > 9 {
		digitTimeout, _ = strconv.Atoi(f[9])
	}
	for try := 0; try < max(tries, 1) && !c.hungUp(); try++ {
		if c.waitMedia(c.sim.opts.PlaybackDuration, true) == "hangup" {
			return
		}
		got := c.collect(maxD, terminators, time.Duration(timeout)*time.Millisecond, time.Duration(digitTimeout)*time.Millisecond)
		if len(got) >= minD && re.MatchString(got) {
			c.SetVar(varName, got)
			return
		}
	}
}

// read implements "min max sound_file variable_name timeout terminators".
func (c *Channel) read(arg string) {
	f := strings.Fields(arg)
	if len(f) < 6 {
		c.SetVar("read_result", "failure")
		return
	}
	minD, _ := strconv.Atoi(f[0])
	maxD, _ := strconv.Atoi(f[1])
	timeout, _ := strconv.Atoi(f[4])
	if c.waitMedia(c.sim.opts.PlaybackDuration, true) == "hangup" {
		return
	}
	got := c.collect(maxD, f[5], time.Duration(timeout)*time.Millisecond, time.Duration(timeout)*time.Millisecond)
	c.SetVar(f[3], got)
	if len(got) >= minD {
		c.SetVar("read_result", "success")
	} else {
		c.SetVar("read_result", "timeout")
	}
}

// collect reads up to maxD digits, stopping at a terminator or when no
// digit comes in time.
func (c *Channel) collect(maxD int, terminators string, first, between time.Duration) string {
	var got []byte
	wait := first
	for len(got) < maxD {
		t := time.NewTimer(c.sim.scaled(wait))
		select {
		case d := <-c.dtmf:
			t.Stop()
			if strings.IndexByte(terminators, d) >= 0 {
				return string(got)
			}
			got = append(got, d)
			wait = between
		case <-t.C:
			return string(got)
		case <-c.ctx.Done():
			t.Stop()
			return string(got)
		}
	}
	return string(got)
}

// bridgeTo dials the first leg of a dial string and bridges to it until
// either side hangs up; on failure it sets FreeSWITCH's variables.
func (c *Channel) bridgeTo(dial string) {
	b, cause := c.sim.dial(c.ctx, dial, c.profile, 60*time.Second)
	if b == nil {
		c.SetVar("originate_disposition", cause)
		c.SetVar("bridge_hangup_cause", cause)
		c.SetVar("last_bridge_hangup_cause", cause)
		return
	}
	c.sim.goroutine(func() { b.run([]Action{{App: "park"}}) })
	c.mu.Lock()
	c.bLeg = b
	c.mu.Unlock()
	c.Answer()
	c.bridge(b)
	select {
	case <-b.ctx.Done():
		c.unbridge(b)
	case <-c.ctx.Done():
	}
	c.mu.Lock()
	c.bLeg = nil
	c.mu.Unlock()
	c.SetVar("last_bridge_hangup_cause", b.Cause())
}

// requestTransfer sends the channel to another extension: the running
// applications end and the dialplan runs again.
func (c *Channel) requestTransfer(arg string) {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return
	}
	c.mu.Lock()
	c.profile.dest = f[0]
	if len(f) > 2 {
		c.profile.context = f[2]
	}
	c.transfer = true
	c.mu.Unlock()
	select {
	case c.brk <- struct{}{}:
	default:
	}
}

func (c *Channel) transferring() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transfer
}
