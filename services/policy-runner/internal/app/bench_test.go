package app_test

import (
	"context"
	"os"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// instantCall answers every command at once, in process: what is left to
// measure is the runner and the Lua.
type instantCall struct{ hung bool }

func (c *instantCall) Execute(_ context.Context, app, _ string, vars []string) (luaapi.Result, error) {
	r := luaapi.Result{Application: app, Response: "FILE PLAYED"}
	if app == "play_and_get_digits" {
		r.Vars = map[string]string{vars[0]: "2"}
	}
	return r, nil
}
func (c *instantCall) Hangup(context.Context, string) error              { c.hung = true; return nil }
func (c *instantCall) Set(context.Context, string, string) error         { return nil }
func (c *instantCall) Get(context.Context, string) (string, bool, error) { return "", false, nil }
func (c *instantCall) Transfer(context.Context, string, string, string) error {
	c.hung = true
	return nil
}
func (c *instantCall) Ready() bool { return !c.hung }

// memStore is a store in memory, as the KV store is once its watch has
// the bucket.
type memStore map[string]string

func (m memStore) Get(_ context.Context, name string) (app.Policy, error) {
	src, ok := m[name]
	if !ok {
		return app.Policy{}, app.ErrNoPolicy
	}
	return app.Policy{Name: name, Version: "1", Source: src}, nil
}

// instantQueue bridges every caller at once.
type instantQueue struct{}

func (instantQueue) Enqueue(context.Context, luaapi.Call, luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	return luaapi.EnqueueResult{Outcome: luaapi.OutcomeAnswered, Agent: "1001"}, nil
}

func benchRunner(b *testing.B) *app.Runner {
	src, err := os.ReadFile("testdata/typical.lua")
	if err != nil {
		b.Fatal(err)
	}
	sb := sandbox.New(sandbox.Limits{})
	b.Cleanup(sb.Close)
	r, err := app.New(app.Config{
		Store: memStore{"typical": string(src)}, Sandbox: sb, LibDir: "../../../../lua/lib", Default: "typical",
		NewCall: func(string) luaapi.CallControl { return &instantCall{} },
		Queue:   instantQueue{},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// BenchmarkTypicalPolicy is issue 4's number: runs of a typical policy per
// second on one core, the call side answered in process.
func BenchmarkTypicalPolicy(b *testing.B) {
	r := benchRunner(b)
	call := luaapi.Call{CallID: "bench", DestinationNumber: "8084", CallerIDNumber: "+15551234"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Handle(ctx, call)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}
