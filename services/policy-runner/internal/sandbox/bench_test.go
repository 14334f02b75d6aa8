package sandbox_test

import (
	"context"
	"os"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

type okCall struct{}

func (okCall) Execute(_ context.Context, app, _ string, vars []string) (luaapi.Result, error) {
	r := luaapi.Result{Application: app, Response: "FILE PLAYED"}
	if len(vars) > 0 {
		r.Vars = map[string]string{vars[0]: "2"}
	}
	return r, nil
}
func (okCall) Hangup(context.Context, string) error                   { return nil }
func (okCall) Set(context.Context, string, string) error              { return nil }
func (okCall) Get(context.Context, string) (string, bool, error)      { return "", false, nil }
func (okCall) Transfer(context.Context, string, string, string) error { return nil }
func (okCall) Ready() bool                                            { return true }

// The pool against a fresh state per run, side by side, on the typical
// policy of internal/app's benchmark.
func BenchmarkStates(b *testing.B) {
	src, err := os.ReadFile("../app/testdata/typical.lua")
	if err != nil {
		b.Fatal(err)
	}
	prog, err := sandbox.Compile("typical", string(src), sandbox.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	env := luaapi.Env{Ctx: context.Background(), Call: luaapi.Call{CallID: "b"}, Ctl: okCall{}}
	lib := "../../../../lua/lib"
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sb.Run(context.Background(), prog, sandbox.Env{Install: luaapi.InstallFor(env), LibDir: lib}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pooled", func(b *testing.B) {
		p := sandbox.NewPool(sb, lib, 0, luaapi.Install)
		defer p.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Run(context.Background(), prog, env, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
