// Package replay re-runs a past call's policy from what its events
// recorded (the call.started data and every input the run consumed), with
// no gateway and no caller: the same script and the same inputs retrace the
// same path, so "why did this caller end up in voicemail?" has an answer.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/recording"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// ErrNotRecorded: the call has no finished policy run to replay.
var ErrNotRecorded = errors.New("no recorded policy run")

// Record is a past run as its last event tells it.
type Record struct {
	Type  string // policy.completed or policy.failed
	Event app.RunEvent
}

// Fetch reads the end of the call's policy run from the POLICIES stream:
// its last policy.completed or policy.failed, each read directly by
// subject. It makes no consumer: an ordered consumer per replay outlived
// its command by five minutes (nats.go's inactivity threshold), and a
// script replaying a day of calls would have filled the stream's 1,000
// consumers, nats-server's default limit.
func Fetch(ctx context.Context, js jetstream.JetStream, callID string) (*Record, error) {
	if callID == "" || strings.ContainsAny(callID, ".*> \t") {
		return nil, fmt.Errorf("%q is not a call UUID", callID)
	}
	s, err := js.Stream(ctx, "POLICIES")
	if err != nil {
		return nil, fmt.Errorf("read the POLICIES stream: %w", err)
	}
	var last *jetstream.RawStreamMsg
	for _, end := range []string{"completed", "failed"} {
		m, err := s.GetLastMsgForSubject(ctx, "policies."+callID+"."+end)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read policy events of %s: %w", callID, err)
		}
		if last == nil || m.Sequence > last.Sequence {
			last = m
		}
	}
	if last == nil {
		return nil, fmt.Errorf("%w for call %s (still running, never routed here, or older than the stream keeps)", ErrNotRecorded, callID)
	}
	env, err := events.Parse(last.Data)
	if err != nil {
		return nil, fmt.Errorf("%s #%d of %s is unreadable: %w", last.Subject, last.Sequence, callID, err)
	}
	if env.Type != "policy.completed" && env.Type != "policy.failed" {
		return nil, fmt.Errorf("%s #%d of %s is a %s, not the end of a policy run", last.Subject, last.Sequence, callID, env.Type)
	}
	var ev app.RunEvent
	if err := json.Unmarshal(env.Data, &ev); err != nil {
		return nil, fmt.Errorf("%s of %s is unreadable: %w", env.Type, callID, err)
	}
	return &Record{Type: env.Type, Event: ev}, nil
}

// Result is what a replay did and how it compares with the recorded run.
type Result struct {
	Trace    []string
	Err      error // the replayed run's error
	Diverged error // the replay asked for other inputs than the run had
	Unused   int   // recorded inputs the replay did not consume
	Same     bool  // the replay ended as the recorded run did
}

// Run replays rec with source (the recorded version of the policy, or an
// edited one to see what it would have done).
func Run(ctx context.Context, sb *sandbox.Sandbox, libDir string, rec *Record, source string) (Result, error) {
	if rec.Event.Inputs == nil {
		return Result{}, fmt.Errorf("%w: the policy never ran (%s)", ErrNotRecorded, rec.Event.Error)
	}
	prog, err := sandbox.Compile(rec.Event.Policy, source, sandbox.Limits{})
	if err != nil {
		return Result{}, fmt.Errorf("compile %s: %w", rec.Event.Policy, err)
	}
	var res Result
	p := recording.NewReplayer(rec.Event.Inputs.Tape)
	env := p.Env(luaapi.Env{Ctx: ctx, Call: rec.Event.Inputs.Call, Logger: slog.New(slog.DiscardHandler),
		Trace: func(action string, args ...any) {
			res.Trace = append(res.Trace, strings.TrimSpace(action+" "+strings.TrimSpace(fmt.Sprint(args...))))
		}})
	_, res.Err = sb.Run(ctx, prog, sandbox.Env{Install: luaapi.InstallFor(env), LibDir: libDir, Clock: env.Now})
	res.Diverged = p.Diverged()
	res.Unused = p.Unused()
	res.Same = res.Diverged == nil && res.Unused == 0 && sameEnd(rec, res.Err)
	return res, nil
}

// sameEnd: the replay ended as the recorded run did — cleanly, or with the
// same error.
func sameEnd(rec *Record, err error) bool {
	if rec.Event.Error == "" {
		return err == nil
	}
	return err != nil && err.Error() == rec.Event.Error
}
