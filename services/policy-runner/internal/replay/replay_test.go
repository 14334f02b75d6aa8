package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/recording"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/replay"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// liveCall is a caller who presses 2, then hangs up after digitsThen more
// actions.
type liveCall struct {
	actions, hangAt int
	hung            bool
}

func (c *liveCall) act() error {
	if c.hung {
		return errors.New("the call has hung up")
	}
	c.actions++
	if c.hangAt > 0 && c.actions >= c.hangAt {
		c.hung = true
	}
	return nil
}

func (c *liveCall) Execute(_ context.Context, app, _ string, vars []string) (luaapi.Result, error) {
	if err := c.act(); err != nil {
		return luaapi.Result{}, err
	}
	r := luaapi.Result{Application: app, Response: "FILE PLAYED", Vars: map[string]string{}}
	for _, v := range vars {
		r.Vars[v] = "2"
	}
	return r, nil
}
func (c *liveCall) Hangup(context.Context, string) error                   { c.hung = true; return nil }
func (c *liveCall) Set(context.Context, string, string) error              { return c.act() }
func (c *liveCall) Get(context.Context, string) (string, bool, error)      { return "gold", true, c.act() }
func (c *liveCall) Transfer(context.Context, string, string, string) error { c.hung = true; return nil }
func (c *liveCall) Ready() bool                                            { return !c.hung }

type liveKV map[string]string

func (k liveKV) Get(_ context.Context, key string) (string, bool, error) {
	v, ok := k[key]
	return v, ok, nil
}
func (k liveKV) Set(_ context.Context, key, v string) error { k[key] = v; return nil }
func (k liveKV) Delete(_ context.Context, key string) error { delete(k, key); return nil }

type openOnWeekdays struct{}

func (openOnWeekdays) IsOpen(name string, t time.Time) (bool, error) {
	if name != "support" {
		return false, fmt.Errorf("no schedule named %q", name)
	}
	return t.Weekday() != time.Saturday && t.Weekday() != time.Sunday, nil
}

type slowQueue struct{}

func (slowQueue) Enqueue(context.Context, luaapi.Call, luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	return luaapi.EnqueueResult{Outcome: "timeout", WaitSeconds: 300}, nil
}

const policy = `
call.answer()
local visits = tonumber(kv.get("visits." .. call.caller_id_number) or "0") + 1
kv.set("visits." .. call.caller_id_number, tostring(visits))
local tier = call.get("tier")
log.info("caller", {visits = visits, tier = tier, started = os.time(), lucky = math.random(1, 100)})
if not schedule.is_open("support") then return call.transfer("voicemail") end
local choice = call.play_and_get_digits{file = "menu.wav", regex = "[12]"}
local r = queue.enqueue(choice == "2" and "support" or "sales", {timeout = 300})
while call.ready() do
  call.playback("sorry.wav")
end
`

// record runs policy live (a tape recorder on every input) and returns what
// the events would carry.
func record(t *testing.T, src string, hangAt int, at time.Time) (*replay.Record, []string) {
	t.Helper()
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	prog, err := sandbox.Compile("p", src, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var trace []string
	rec := recording.NewRecorder(0)
	c := luaapi.Call{CallID: "c-1", CallerIDNumber: "+4420", DestinationNumber: "8084", Variables: map[string]string{"b": "2", "a": "1"}}
	clock := at
	env := rec.Env(luaapi.Env{Ctx: context.Background(), Call: c, Ctl: &liveCall{hangAt: hangAt}, KV: liveKV{"visits.+4420": "4"},
		Schedules: openOnWeekdays{}, Queue: slowQueue{},
		Now: func() time.Time { clock = clock.Add(time.Millisecond); return clock },
		Trace: func(action string, args ...any) {
			trace = append(trace, strings.TrimSpace(action+" "+fmt.Sprint(args...)))
		}})
	_, runErr := sb.Run(context.Background(), prog, sandbox.Env{Install: luaapi.InstallFor(env), Clock: env.Now})
	ev := app.RunEvent{CallID: c.CallID, Policy: "p", Version: "1", Inputs: &app.Inputs{Call: c, Tape: rec.Tape()}}
	typ := "policy.completed"
	if runErr != nil {
		ev.Error = runErr.Error()
	}
	// Through JSON, as the tape travels in the event.
	b, _ := json.Marshal(ev)
	var back app.RunEvent
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return &replay.Record{Type: typ, Event: back}, trace
}

func TestReplayRetracesTheCall(t *testing.T) {
	monday := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		hangAt int
		at     time.Time
	}{
		{"caller hangs up in the queue's aftermath", 6, monday},
		{"closed on Sunday", 0, monday.AddDate(0, 0, -1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, live := record(t, policy, tc.hangAt, tc.at)
			if want := "queue.enqueue support"; tc.hangAt > 0 && !strings.Contains(strings.Join(live, "|"), want) {
				t.Fatalf("the live run did not get as far as %q: %q (%s)", want, live, rec.Event.Error)
			}
			sb := sandbox.New(sandbox.Limits{})
			defer sb.Close()
			res, err := replay.Run(context.Background(), sb, "", rec, policy)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Same || res.Diverged != nil || res.Unused != 0 {
				t.Fatalf("replay differs: same=%v diverged=%v unused=%d err=%v\nlive   %q\nreplay %q", res.Same, res.Diverged, res.Unused, res.Err, live, res.Trace)
			}
			if strings.Join(res.Trace, "\n") != strings.Join(live, "\n") {
				t.Fatalf("traces differ\nlive   %q\nreplay %q", live, res.Trace)
			}
		})
	}
}

// An edited policy that asks for other inputs is caught at the first
// difference, with both sides named.
func TestReplayOfAnEditedPolicyShowsWhereItDiffers(t *testing.T) {
	rec, _ := record(t, policy, 6, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	edited := strings.Replace(policy, `call.get("tier")`, `call.get("segment")`, 1)
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	res, err := replay.Run(context.Background(), sb, "", rec, edited)
	if err != nil {
		t.Fatal(err)
	}
	if res.Same || !errors.Is(res.Diverged, recording.ErrDiverged) ||
		!strings.Contains(res.Diverged.Error(), `"tier"`) || !strings.Contains(res.Diverged.Error(), `"segment"`) {
		t.Fatalf("same=%v diverged=%v", res.Same, res.Diverged)
	}
}

// A tape that outgrew its bound says so, and the replay stops there with
// that reason instead of inventing inputs.
func TestTruncatedTape(t *testing.T) {
	r := recording.NewRecorder(300)
	env := r.Env(luaapi.Env{Ctl: &liveCall{}})
	for i := range 20 {
		env.Ctl.Execute(context.Background(), "playback", fmt.Sprintf("file-%d.wav", i), nil)
	}
	tape := r.Tape()
	if !tape.Truncated || len(tape.Entries) == 0 || len(tape.Entries) >= 20 {
		t.Fatalf("tape: truncated=%v entries=%d", tape.Truncated, len(tape.Entries))
	}
	p := recording.NewReplayer(tape)
	penv := p.Env(luaapi.Env{})
	var err error
	for i := 0; err == nil && i < 20; i++ {
		_, err = penv.Ctl.Execute(context.Background(), "playback", fmt.Sprintf("file-%d.wav", i), nil)
	}
	if !errors.Is(err, recording.ErrDiverged) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("replay past the end: %v", err)
	}
}
