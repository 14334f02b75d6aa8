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
	"time"

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

// Fetch reads the call's policy events from the POLICIES stream and
// returns the run's end.
func Fetch(ctx context.Context, js jetstream.JetStream, callID string) (*Record, error) {
	if callID == "" || strings.ContainsAny(callID, ".*> \t") {
		return nil, fmt.Errorf("%q is not a call UUID", callID)
	}
	cons, err := js.OrderedConsumer(ctx, "POLICIES", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"policies." + callID + ".>"},
	})
	if err != nil {
		return nil, fmt.Errorf("read the POLICIES stream: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the POLICIES stream: %w", err)
	}
	var last *Record
	for i := uint64(0); i < info.NumPending; i++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("read policy events of %s: %w", callID, err)
		}
		env, err := events.Parse(m.Data())
		if err != nil {
			continue
		}
		if env.Type != "policy.completed" && env.Type != "policy.failed" {
			continue
		}
		var ev app.RunEvent
		if err := json.Unmarshal(env.Data, &ev); err != nil {
			return nil, fmt.Errorf("%s of %s is unreadable: %w", env.Type, callID, err)
		}
		last = &Record{Type: env.Type, Event: ev}
	}
	if last == nil {
		return nil, fmt.Errorf("%w for call %s (still running, never routed here, or older than the stream keeps)", ErrNotRecorded, callID)
	}
	return last, nil
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
