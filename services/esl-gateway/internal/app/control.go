package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// Command is a callctl.<uuid> request (docs/events.md, "Call control").
type Command struct {
	Op          string   `json:"op"`
	App         string   `json:"app,omitempty"`
	Arg         string   `json:"arg,omitempty"`
	Lock        bool     `json:"lock,omitempty"`
	Vars        []string `json:"vars,omitempty"`
	Cause       string   `json:"cause,omitempty"`
	Name        string   `json:"name,omitempty"`
	Value       string   `json:"value,omitempty"`
	Destination string   `json:"destination,omitempty"`
	OtherUUID   string   `json:"other_uuid,omitempty"`
	Dialplan    string   `json:"dialplan,omitempty"`
	Context     string   `json:"context,omitempty"`
	TimeoutMS   int      `json:"timeout_ms,omitempty"`
}

// Reply answers a Command.
type Reply struct {
	OK     bool        `json:"ok"`
	Result *Result     `json:"result,omitempty"`
	Error  *ReplyError `json:"error,omitempty"`
}

// Result is what an operation produced.
type Result struct {
	Application string            `json:"application,omitempty"`
	Response    string            `json:"response,omitempty"` // Application-Response
	AppUUID     string            `json:"app_uuid,omitempty"`
	Vars        map[string]string `json:"vars,omitempty"`
	Value       *string           `json:"value,omitempty"` // get: nil when unset
}

// ReplyError is a failed Command.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Limits on a callctl request.
const (
	MaxCommandBytes = 64 << 10
	MaxArgBytes     = 8 << 10
	DefaultTimeout  = time.Minute
	MaxTimeout      = time.Hour
	maxReturnedVars = 64
)

var (
	appNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	varNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)
	causeRE   = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	uuidRE    = regexp.MustCompile(`^[A-Za-z0-9\-]{1,64}$`)
)

type ctlError struct{ code, msg string }

func (e *ctlError) Error() string { return e.code + ": " + e.msg }

func invalid(format string, args ...any) error {
	return &ctlError{"invalid_request", fmt.Sprintf(format, args...)}
}

// control decodes, validates and runs one request against a call.
func (g *Gateway) control(ctx context.Context, c *Call, raw []byte) []byte {
	cmd, err := decodeCommand(raw)
	var res *Result
	if err == nil {
		err = cmd.validate()
	}
	if err == nil {
		timeout := DefaultTimeout
		if cmd.TimeoutMS > 0 {
			timeout = min(time.Duration(cmd.TimeoutMS)*time.Millisecond, MaxTimeout)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		res, err = g.run(ctx, c, cmd)
		cancel()
		if g.cfg.Hooks.Command != nil {
			name := cmd.Op
			if cmd.Op == "execute" {
				name = cmd.App
			}
			g.cfg.Hooks.Command(name, time.Since(start), err)
		}
	}
	out := Reply{OK: err == nil, Result: res}
	if err != nil {
		out.Error = replyError(err)
		g.logger(c).Warn("call control failed", "op", cmd.Op, "app", cmd.App, "code", out.Error.Code, "err", err)
	}
	b, _ := json.Marshal(out)
	return b
}

func decodeCommand(raw []byte) (Command, error) {
	var cmd Command
	if len(raw) > MaxCommandBytes {
		return cmd, invalid("request of %d bytes exceeds %d", len(raw), MaxCommandBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return cmd, invalid("request is not a JSON call command: %v", err)
	}
	return cmd, nil
}

func (cmd *Command) validate() error {
	if len(cmd.Arg) > MaxArgBytes || len(cmd.Value) > MaxArgBytes || len(cmd.Destination) > MaxArgBytes {
		return invalid("arg, value and destination are limited to %d bytes", MaxArgBytes)
	}
	for _, s := range []string{cmd.Arg, cmd.Value, cmd.Destination, cmd.Dialplan, cmd.Context} {
		if strings.ContainsAny(s, "\r\n\x00") {
			return invalid("line breaks are not allowed in arg, value, destination, dialplan or context")
		}
	}
	if len(cmd.Vars) > maxReturnedVars {
		return invalid("at most %d vars", maxReturnedVars)
	}
	for _, v := range cmd.Vars {
		if !varNameRE.MatchString(v) {
			return invalid("vars: %q is not a variable name", v)
		}
	}
	if cmd.TimeoutMS < 0 {
		return invalid("timeout_ms must be positive")
	}
	switch cmd.Op {
	case "execute":
		if !appNameRE.MatchString(cmd.App) {
			return invalid("execute needs app, an application name such as playback")
		}
	case "hangup":
		if cmd.Cause != "" && !causeRE.MatchString(cmd.Cause) {
			return invalid("cause %q is not a hangup cause such as NORMAL_CLEARING", cmd.Cause)
		}
	case "set", "get":
		if !varNameRE.MatchString(cmd.Name) {
			return invalid("%s needs name, a variable name", cmd.Op)
		}
	case "bridge":
		if (cmd.Destination == "") == (cmd.OtherUUID == "") {
			return invalid("bridge needs either destination (a dial string) or other_uuid (a live call)")
		}
		if cmd.OtherUUID != "" && !uuidRE.MatchString(cmd.OtherUUID) {
			return invalid("other_uuid is not a call UUID")
		}
	case "transfer":
		if cmd.Destination == "" || strings.ContainsAny(cmd.Destination+cmd.Dialplan+cmd.Context, " ") {
			return invalid("transfer needs destination (an extension), and dialplan/context without spaces")
		}
	case "break":
	default:
		return invalid("op %q: want execute, hangup, set, get, bridge, transfer or break", cmd.Op)
	}
	return nil
}

// run executes a validated command. Variables are read and set with api
// commands in full-control sockets (they do not queue behind a playback),
// and as applications otherwise.
func (g *Gateway) run(ctx context.Context, c *Call, cmd Command) (*Result, error) {
	s := c.sess
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-s.Done():
		return nil, &ctlError{"call_gone", "the call's session has ended"}
	default:
	}
	switch cmd.Op {
	case "execute":
		return execute(ctx, s, cmd.App, cmd.Arg, cmd.Lock, cmd.Vars)
	case "hangup":
		return &Result{}, s.Hangup(ctx, cmd.Cause)
	case "set":
		if s.Full {
			_, err := s.API(ctx, "uuid_setvar "+c.ID+" "+cmd.Name+" "+cmd.Value)
			return &Result{}, err
		}
		return execute(ctx, s, "set", cmd.Name+"="+cmd.Value, false, nil)
	case "get":
		return g.get(ctx, c, cmd.Name)
	case "bridge":
		if cmd.OtherUUID != "" {
			if !s.Full {
				return nil, &ctlError{"not_available", "bridging to another call needs a `socket ... async full` session"}
			}
			_, err := s.API(ctx, "uuid_bridge "+c.ID+" "+cmd.OtherUUID)
			return &Result{}, err
		}
		return execute(ctx, s, "bridge", cmd.Destination, false, cmd.Vars)
	case "transfer":
		return execute(ctx, s, "transfer", strings.TrimSpace(cmd.Destination+" "+cmd.Dialplan+" "+cmd.Context), false, nil)
	case "break":
		if s.Full {
			_, err := s.API(ctx, "uuid_break "+c.ID+" all")
			return &Result{}, err
		}
		return execute(ctx, s, "break", "", false, nil)
	}
	return nil, invalid("unknown op")
}

func execute(ctx context.Context, s *esl.Session, app, arg string, lock bool, vars []string) (*Result, error) {
	ev, err := s.Execute(ctx, app, arg, esl.ExecOptions{Lock: lock})
	if err != nil {
		return nil, err
	}
	r := &Result{Application: ev.Get("Application"), Response: ev.Get("Application-Response"), AppUUID: ev.Get("Application-UUID")}
	if len(vars) > 0 {
		r.Vars = map[string]string{}
		for _, v := range vars {
			if val, ok := ev.Headers.Lookup("variable_" + v); ok {
				r.Vars[v] = val
			}
		}
	}
	return r, nil
}

func (g *Gateway) get(ctx context.Context, c *Call, name string) (*Result, error) {
	if c.sess.Full {
		out, err := c.sess.API(ctx, "uuid_getvar "+c.ID+" "+name)
		if err != nil {
			return nil, err
		}
		if out == "_undef_" {
			return &Result{}, nil
		}
		return &Result{Value: &out}, nil
	}
	// Static sockets cannot run api: answer from the variables the
	// channel's events have carried.
	c.mu.Lock()
	v, ok := c.vars[name]
	c.mu.Unlock()
	if !ok {
		return &Result{}, nil
	}
	return &Result{Value: &v}, nil
}

func replyError(err error) *ReplyError {
	var ce *ctlError
	var cmdErr *esl.CommandError
	switch {
	case errors.As(err, &ce):
		return &ReplyError{Code: ce.code, Message: ce.msg}
	case errors.As(err, &cmdErr):
		return &ReplyError{Code: "command_failed", Message: cmdErr.Reply}
	case errors.Is(err, esl.ErrInjection):
		return &ReplyError{Code: "invalid_request", Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &ReplyError{Code: "timeout", Message: "FreeSWITCH did not finish in time: " + err.Error()}
	case errors.Is(err, esl.ErrClosed):
		return &ReplyError{Code: "call_gone", Message: "the call's session ended: " + err.Error()}
	}
	return &ReplyError{Code: "internal", Message: err.Error()}
}
