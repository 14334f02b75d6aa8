package fssim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// API runs an api command as mod_commands would and returns its output,
// worded as FreeSWITCH words it.
func (s *Sim) API(ctx context.Context, cmd string) string {
	verb, arg, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	arg = strings.TrimSpace(arg)
	f := strings.Fields(arg)
	channel := func() (*Channel, string) {
		if len(f) == 0 {
			return nil, "-ERR Usage: " + verb + " <uuid>\n"
		}
		if c := s.Channel(f[0]); c != nil {
			return c, ""
		}
		return nil, "-ERR No such channel!\n"
	}
	switch verb {
	case "status":
		return s.status()
	case "version":
		return "FreeSWITCH Version 1.11.3-fssim (fssim)\n"
	case "originate":
		return s.originateAPI(ctx, arg)
	case "uuid_answer":
		c, e := channel()
		if c == nil {
			return e
		}
		c.Answer()
		return "+OK\n"
	case "uuid_kill":
		c, e := channel()
		if c == nil {
			return e
		}
		cause := "NORMAL_CLEARING"
		if len(f) > 1 {
			cause = f[1]
		}
		c.Hangup(cause)
		return "+OK\n"
	case "uuid_bridge":
		if len(f) < 2 {
			return "-ERR Invalid uuid\n"
		}
		a, b := s.Channel(f[0]), s.Channel(f[1])
		if a == nil || b == nil {
			return "-ERR Invalid uuid\n"
		}
		a.Answer()
		b.Answer()
		a.bridge(b)
		return "+OK " + b.UUID + "\n"
	case "uuid_broadcast":
		c, e := channel()
		if c == nil {
			return e
		}
		if len(f) < 2 {
			return "-ERR Usage: uuid_broadcast <uuid> <path> [aleg|bleg|both]\n"
		}
		c.enqueue(&message{app: "playback", arg: f[1]})
		return "+OK Message sent\n"
	case "uuid_send_dtmf":
		c, e := channel()
		if c == nil {
			return e
		}
		if len(f) < 2 {
			return "-ERR Usage: uuid_send_dtmf <uuid> <dtmf_data>\n"
		}
		c.PressDigits(f[1])
		return fmt.Sprintf("+OK %s sent DTMF %s.\n", c.UUID, f[1])
	case "uuid_setvar":
		c, e := channel()
		if c == nil {
			return e
		}
		if len(f) < 2 {
			return "-ERR Syntax Error!\n"
		}
		if len(f) == 2 {
			c.unsetVar(f[1])
		} else {
			c.SetVar(f[1], strings.Join(f[2:], " "))
		}
		return "+OK\n"
	case "uuid_getvar":
		c, e := channel()
		if c == nil {
			return e
		}
		if len(f) < 2 {
			return "-ERR Syntax Error!\n"
		}
		if v, ok := c.Var(f[1]); ok {
			return v
		}
		return "_undef_"
	case "uuid_break":
		c, e := channel()
		if c == nil {
			return e
		}
		select {
		case c.brk <- struct{}{}:
		default:
		}
		return "+OK\n"
	case "uuid_transfer":
		c, e := channel()
		if c == nil {
			return e
		}
		if len(f) < 2 {
			return "-ERR Usage: uuid_transfer <uuid> <dest-exten> [<dialplan>] [<context>]\n"
		}
		c.requestTransfer(strings.Join(f[1:], " "))
		return "+OK\n"
	case "uuid_exists":
		if len(f) > 0 && s.Channel(f[0]) != nil {
			return "true"
		}
		return "false"
	case "show":
		if len(f) > 0 && f[0] == "channels" {
			return s.showChannels()
		}
		return "-ERR Usage: show channels\n"
	case "hupall":
		cause := "NORMAL_CLEARING"
		if len(f) > 0 {
			cause = f[0]
		}
		for _, id := range s.Channels() {
			if c := s.Channel(id); c != nil {
				c.Hangup(cause)
			}
		}
		return "+OK hangup all channels with cause " + cause + "\n"
	case "global_getvar":
		return ""
	}
	return "-ERR " + verb + " Command not found!\n"
}

func (s *Sim) status() string {
	n := len(s.Channels())
	return fmt.Sprintf("UP 0 years, 0 days, 0 hours, 0 minutes, 0 seconds, 0 milliseconds, 0 microseconds\n"+
		"FreeSWITCH (Version 1.11.3-fssim  64bit) is ready\n"+
		"%d session(s) since startup\n%d session(s) - peak %d, last 5min %d \n"+
		"0 session(s) per Sec out of max 2000, peak 0, last 5min 0 \n10000 session(s) max\n"+
		"min idle cpu 0.00/100.00\nCurrent Stack Size/Max 240K/8192K\n", n, n, n, n)
}

func (s *Sim) showChannels() string {
	ids := s.Channels()
	sort.Strings(ids)
	var b strings.Builder
	b.WriteString("uuid,direction,created,created_epoch,name,state,cid_name,cid_num,dest,application,application_data,callstate\n")
	for _, id := range ids {
		c := s.Channel(id)
		if c == nil {
			continue
		}
		c.mu.Lock()
		fmt.Fprintf(&b, "%s,%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s\n", c.UUID, c.direction, c.created.Format("2006-01-02 15:04:05"),
			c.created.Unix(), c.name, c.state, c.profile.callerName, c.profile.callerNumber, c.profile.dest,
			c.vars["current_application"], c.vars["current_application_data"], c.callState)
		c.mu.Unlock()
	}
	fmt.Fprintf(&b, "\n%d total.\n", len(ids))
	return b.String()
}

// originateAPI is "originate <dial string> <&app(arg)|extension [dialplan] [context]>".
func (s *Sim) originateAPI(ctx context.Context, arg string) string {
	dial, target := splitOriginate(arg)
	if dial == "" {
		return "-ERR INVALID_NUMBER_FORMAT\n"
	}
	vars, _ := parseVars(dial)
	timeout := 60 * time.Second
	if t, ok := vars["originate_timeout"]; ok {
		var n int
		if _, err := fmt.Sscan(t, &n); err == nil && n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	p := profile{callerName: "FreeSWITCH", callerNumber: "0000000000", dialplan: "XML", context: "default", source: "src/switch_ivr_originate.c"}
	if v := vars["origination_caller_id_name"]; v != "" {
		p.callerName = v
	}
	if v := vars["origination_caller_id_number"]; v != "" {
		p.callerNumber = v
	}
	c, cause := s.dial(ctx, dial, p, timeout)
	if c == nil {
		return "-ERR " + cause + "\n"
	}
	s.goroutine(func() { c.run(targetActions(target)) })
	return "+OK " + c.UUID + "\n"
}

// splitOriginate separates the dial string (which may hold spaces inside
// its {…} block) from the target.
func splitOriginate(arg string) (dial, target string) {
	depth := 0
	for i, r := range arg {
		switch r {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ' ':
			if depth == 0 {
				return arg[:i], strings.TrimSpace(arg[i+1:])
			}
		}
	}
	return arg, ""
}

// targetActions turns "&app(arg)" or "ext [dialplan] [context]" into what
// the originated leg runs.
func targetActions(target string) []Action {
	if strings.HasPrefix(target, "&") {
		t := strings.TrimPrefix(target, "&")
		app, arg, _ := strings.Cut(t, "(")
		arg = strings.TrimSuffix(arg, ")")
		if i := strings.IndexByte(app, ' '); i > 0 { // "&app arg" form
			app, arg = app[:i], strings.TrimSpace(app[i+1:])
		}
		return []Action{{App: app, Data: arg}}
	}
	if target == "" {
		return []Action{{App: "park"}}
	}
	f := strings.Fields(target)
	return []Action{{App: "transfer", Data: strings.Join(f, " ")}}
}
