// Command policy-runner runs customer routing policies (sandboxed Lua), one
// per call. Subcommands:
//
//	policy-runner [flags]           serve: run a policy for every call.started
//	policy-runner test <policy.lua> --call call.json [--lib dir]
//	    dry-run a policy against a scripted call: no NATS, no gateway.
//	policy-runner replay <call-uuid> [--nats-url url] [--policy file.lua]
//	    re-run a past call's policy on its recorded inputs.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/service"
)

func main() {
	config.Main("policy-runner", func(ctx context.Context) (int, error) { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, out, errOut io.Writer) (int, error) {
	if len(args) > 0 && args[0] == "test" {
		return testCommand(ctx, args[1:], os.Getenv, out, errOut)
	}
	if len(args) > 0 && args[0] == "replay" {
		return replayCommand(ctx, args[1:], os.Getenv, out, errOut)
	}
	return serve(ctx, args, os.Getenv, errOut)
}

// serve runs the service; `policy-runner test …` and `replay …` are the others.
func serve(ctx context.Context, args []string, getenv func(string) string, out io.Writer) (int, error) {
	var cfg service.Config
	return config.Command{Name: "policy-runner", Flags: cfg.Flags, LogLevel: &cfg.LogLevel, Instance: &cfg.Instance,
		Others: "  policy-runner test <policy.lua> --call call.json [--lib dir] [--schedules file]\n" +
			"  policy-runner replay <call-uuid> [--nats-url url] [--lib dir] [--policy file.lua]",
		Start: func(log *slog.Logger) (config.Runner, error) { return service.New(cfg, log) },
	}.Serve(ctx, args, getenv, out)
}
