package fssim

import (
	"regexp"
	"strings"
)

// Route is one dialplan extension: when the destination matches, its
// actions run in order.
type Route struct {
	Name    string
	Context string // "" matches every context
	Match   *regexp.Regexp
	Actions []Action
}

// Action is one dialplan action, as in <action application="…" data="…"/>.
type Action struct {
	App  string
	Data string
}

// DefaultDialplan mirrors the dialplan the transcripts were recorded
// with, the socket target configurable. Context default: 8084 hands the
// call over in async full mode, 8085 in plain sync mode, 8086 with
// socket_resume and a park afterwards; any other number is answered and
// parked. Context agents: agent-* answers and parks, noanswer-* rings for
// ever, busy-* answers 486.
func DefaultDialplan(socketAddr string) []Route {
	return []Route{
		{Name: "switchyard-async", Context: "default", Match: regexp.MustCompile(`^8084$`), Actions: []Action{
			{"set", "switchyard_policy=default"}, {"socket", socketAddr + " async full"}}},
		{Name: "switchyard-sync", Context: "default", Match: regexp.MustCompile(`^8085$`), Actions: []Action{
			{"socket", socketAddr}}},
		{Name: "switchyard-resume", Context: "default", Match: regexp.MustCompile(`^8086$`), Actions: []Action{
			{"set", "socket_resume=true"}, {"socket", socketAddr + " async full"},
			{"set", "resumed_after_socket=yes"}, {"park", ""}}},
		{Name: "park", Context: "default", Match: regexp.MustCompile(`.`), Actions: []Action{{"answer", ""}, {"park", ""}}},
		{Name: "agent", Context: "agents", Match: regexp.MustCompile(`^agent-`), Actions: []Action{{"answer", ""}, {"park", ""}}},
		{Name: "noanswer", Context: "agents", Match: regexp.MustCompile(`^noanswer-`), Actions: []Action{{"ring_ready", ""}, {"sleep", "3600000"}}},
		{Name: "busy", Context: "agents", Match: regexp.MustCompile(`^busy-`), Actions: []Action{{"respond", "486"}}},
	}
}

// SocketRoute is a route that hands every call to the socket listener at
// addr, in async full mode, with socket_resume when resume is true.
func SocketRoute(pattern, addr string, resume bool, vars ...string) Route {
	r := Route{Name: "socket-" + pattern, Match: regexp.MustCompile(pattern)}
	for _, v := range vars {
		r.Actions = append(r.Actions, Action{"set", v})
	}
	if resume {
		r.Actions = append(r.Actions, Action{"set", "socket_resume=true"})
	}
	r.Actions = append(r.Actions, Action{"socket", addr + " async full"})
	if resume {
		r.Actions = append(r.Actions, Action{"park", ""})
	}
	return r
}

func (s *Sim) route(context, dest string) (Route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.dialplan {
		if (r.Context == "" || r.Context == context) && r.Match.MatchString(dest) {
			return r, true
		}
	}
	return Route{}, false
}

// run is the channel's thread: the dialplan's actions (again after a
// transfer), then the hang-up report.
func (c *Channel) run(actions []Action) {
	defer c.finish()
	for {
		if actions == nil {
			c.mu.Lock()
			dest, context := c.profile.dest, c.profile.context
			c.state = "CS_ROUTING"
			c.mu.Unlock()
			r, ok := c.sim.route(context, dest)
			if !ok {
				c.Hangup("NO_ROUTE_DESTINATION")
				return
			}
			actions = r.Actions
		}
		c.runActions(actions)
		if c.hungUp() {
			return
		}
		c.mu.Lock()
		again := c.transfer
		c.transfer = false
		c.mu.Unlock()
		if !again {
			c.Hangup("NORMAL_CLEARING") // the dialplan ran out
			return
		}
		actions = nil
	}
}

func (c *Channel) runActions(actions []Action) {
	for _, a := range actions {
		if c.hungUp() || c.transferring() {
			return
		}
		if a.App == "socket" {
			if !c.runSocket(a.Data) {
				return
			}
			continue
		}
		c.execute(a.App, c.expand(a.Data), "")
	}
}

// expand substitutes ${var} as the dialplan does.
func (c *Channel) expand(s string) string {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return s
		}
		v, _ := c.Var(s[i+2 : i+j])
		s = s[:i] + v + s[i+j+1:]
	}
}

func mustRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }
