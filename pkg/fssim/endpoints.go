package fssim

import (
	"context"
	"strings"
	"time"
)

// Endpoint is how a simulated phone (an agent) behaves when called.
type Endpoint struct {
	// AnswerAfter is how long it rings before answering.
	AnswerAfter time.Duration
	// Fail, if set, ends the attempt with this cause after AnswerAfter:
	// CALL_REJECTED, USER_BUSY, SUBSCRIBER_ABSENT, …
	Fail string
	// NoAnswer rings until the originate times out (NO_ANSWER).
	NoAnswer bool
	// HangupAfter hangs up this long after answering (0: stays).
	HangupAfter time.Duration
}

// SetEndpoint says how calls to target behave; target is a dial string's
// leg without variables: "user/1000", "sofia/gateway/carrier/+15551234".
// A target ending in "*" matches every leg with that prefix.
func (s *Sim) SetEndpoint(target string, e Endpoint) {
	s.mu.Lock()
	s.endpoints[target] = e
	s.mu.Unlock()
}

// SetGateway declares a SIP gateway and whether it is up; calls through an
// undeclared gateway fail with INVALID_GATEWAY, through a down one with
// GATEWAY_DOWN.
func (s *Sim) SetGateway(name string, up bool) {
	s.mu.Lock()
	s.gateways[name] = up
	s.mu.Unlock()
}

func (s *Sim) endpoint(target string) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.endpoints[target]; ok {
		return e, true
	}
	best, found := "", false
	var e Endpoint
	for k, v := range s.endpoints {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(target, k[:len(k)-1]) && len(k) > len(best) {
			best, e, found = k, v, true
		}
	}
	return e, found
}

// parseVars takes the {k=v,...} block off a dial string.
func parseVars(dial string) (map[string]string, string) {
	vars := map[string]string{}
	if !strings.HasPrefix(dial, "{") {
		return vars, dial
	}
	end := strings.IndexByte(dial, '}')
	if end < 0 {
		return vars, dial
	}
	for _, kv := range splitVars(dial[1:end]) {
		k, v, _ := strings.Cut(kv, "=")
		vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), "'")
	}
	return vars, dial[end+1:]
}

// splitVars splits on commas outside single quotes.
func splitVars(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// firstLeg is the first destination of a dial string: FreeSWITCH tries
// "a,b" at once and "a|b" in turn; the simulator dials the first.
func firstLeg(dial string) string {
	if i := strings.IndexAny(dial, ",|"); i >= 0 {
		dial = dial[:i]
	}
	if strings.HasPrefix(dial, "[") {
		if j := strings.IndexByte(dial, ']'); j > 0 {
			dial = dial[j+1:]
		}
	}
	return strings.TrimSpace(dial)
}

// dial places an outbound leg and waits for it to answer, fail or time out.
// It returns the answered channel (whose thread the caller starts) or the
// cause.
func (s *Sim) dial(ctx context.Context, dial string, caller profile, timeout time.Duration) (*Channel, string) {
	vars, rest := parseVars(dial)
	leg := firstLeg(rest)
	kind, target, _ := strings.Cut(leg, "/")
	switch kind {
	case "error":
		return nil, target
	case "loopback":
		return s.dialLoopback(ctx, vars, target, caller, timeout)
	case "user", "sofia", "verto":
	default:
		return nil, "CHAN_NOT_IMPLEMENTED"
	}
	e, found := s.endpoint(leg)
	if kind == "user" && !found {
		return nil, "SUBSCRIBER_ABSENT"
	}
	if kind == "sofia" && strings.HasPrefix(target, "gateway/") {
		gw, _, _ := strings.Cut(strings.TrimPrefix(target, "gateway/"), "/")
		s.mu.Lock()
		up, known := s.gateways[gw]
		s.mu.Unlock()
		switch {
		case !known:
			return nil, "INVALID_GATEWAY"
		case !up:
			return nil, "GATEWAY_DOWN"
		}
	}
	c := s.newChannel(vars["origination_uuid"], leg, "outbound", calleeProfile(leg, caller), vars)
	c.fireChannelEvent("CHANNEL_CREATE", "switch_core_state_machine.c", "switch_core_session_run", 626)
	cause := s.ring(ctx, c, e, timeout)
	if cause != "" {
		c.Hangup(cause)
		s.goroutine(c.finish)
		return nil, cause
	}
	if e.HangupAfter > 0 {
		s.goroutine(func() {
			if s.sleep(c.ctx, e.HangupAfter) {
				c.Hangup("NORMAL_CLEARING")
			}
		})
	}
	return c, ""
}

func calleeProfile(leg string, caller profile) profile {
	_, dest, _ := strings.Cut(leg, "/")
	if i := strings.LastIndexByte(dest, '/'); i >= 0 {
		dest = dest[i+1:]
	}
	dest, _, _ = strings.Cut(dest, "@")
	p := caller
	p.dest = dest
	p.source = "mod_sofia"
	return p
}

// ring plays out the endpoint's behaviour; "" means answered.
func (s *Sim) ring(ctx context.Context, c *Channel, e Endpoint, timeout time.Duration) string {
	wait := e.AnswerAfter
	if e.NoAnswer {
		wait = timeout
	}
	if wait > timeout {
		wait = timeout
	}
	t := time.NewTimer(s.scaled(wait))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return "ORIGINATOR_CANCEL"
	case <-c.ctx.Done():
		return c.Cause()
	}
	switch {
	case e.NoAnswer || e.AnswerAfter > timeout:
		return "NO_ANSWER"
	case e.Fail != "":
		return e.Fail
	}
	c.Answer()
	return ""
}

// dialLoopback runs "loopback/<ext>[/<context>]": a B leg runs the
// dialplan for ext, and the A leg answers when B does.
func (s *Sim) dialLoopback(ctx context.Context, vars map[string]string, target string, caller profile, timeout time.Duration) (*Channel, string) {
	ext, context, _ := strings.Cut(target, "/")
	if context == "" {
		context = "default"
	}
	a := s.newChannel(vars["origination_uuid"], "loopback/"+ext+"-a", "outbound", calleeProfile("loopback/"+ext, caller), vars)
	a.fireChannelEvent("CHANNEL_CREATE", "switch_core_state_machine.c", "switch_core_session_run", 626)
	bp := caller
	bp.dest, bp.context, bp.source, bp.dialplan = ext, context, "mod_loopback", "xml"
	bvars := map[string]string{"other_loopback_leg_uuid": a.UUID, "loopback_leg": "B"}
	for k, v := range vars {
		if k != "origination_uuid" {
			bvars[k] = v
		}
	}
	b := s.newChannel("", "loopback/"+ext+"-b", "inbound", bp, bvars)
	a.SetVar("other_loopback_leg_uuid", b.UUID)
	b.fireChannelEvent("CHANNEL_CREATE", "switch_core_state_machine.c", "switch_core_session_run", 626)
	if _, ok := s.route(context, ext); !ok {
		b.Hangup("NO_ROUTE_DESTINATION")
		s.goroutine(b.finish)
		a.Hangup("NO_ROUTE_DESTINATION")
		s.goroutine(a.finish)
		return nil, "NO_ROUTE_DESTINATION"
	}
	s.goroutine(func() { b.run(nil) })
	t := time.NewTimer(s.scaled(timeout))
	defer t.Stop()
	select {
	case <-b.answered:
		a.Answer()
		// From here the legs live and die together, as loopback's do.
		s.goroutine(func() {
			select {
			case <-b.ctx.Done():
				a.Hangup(b.Cause())
			case <-a.ctx.Done():
				b.Hangup(a.Cause())
			}
		})
		return a, ""
	case <-b.ctx.Done():
		// A refusal behind loopback reaches the A leg as NORMAL_CLEARING
		// (transcript inbound/04: a 486 on busy-1).
		a.Hangup("NORMAL_CLEARING")
		s.goroutine(a.finish)
		return nil, "NORMAL_CLEARING"
	case <-t.C:
		b.Hangup("NO_ANSWER")
		a.Hangup("NO_ANSWER")
		s.goroutine(a.finish)
		return nil, "NO_ANSWER"
	case <-ctx.Done():
		b.Hangup("ORIGINATOR_CANCEL")
		a.Hangup("ORIGINATOR_CANCEL")
		s.goroutine(a.finish)
		return nil, "ORIGINATOR_CANCEL"
	}
}
