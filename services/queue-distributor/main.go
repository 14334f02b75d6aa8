// Command queue-distributor keeps queues and agents (event-sourced in
// JetStream, projected into Redis), offers waiting callers to agents and
// bridges them. Subcommands:
//
//	queue-distributor [flags]          serve
//	queue-distributor rebuild [flags]  replay QUEUES and AGENTS into an empty projection
//	queue-distributor checksum [flags] print the projection's checksum and position
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/service"
)

func main() {
	config.Main("queue-distributor", func(ctx context.Context) (int, error) {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

func run(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (int, error) {
	if len(args) > 0 && args[0] == "rebuild" {
		return rebuildCommand(ctx, args[1:], getenv, out, errOut)
	}
	if len(args) > 0 && args[0] == "checksum" {
		return checksumCommand(ctx, args[1:], getenv, out, errOut)
	}
	var cfg service.Config
	return config.Command{Name: "queue-distributor", Flags: cfg.Flags, LogLevel: &cfg.LogLevel, Instance: &cfg.Instance,
		Others: "  queue-distributor rebuild [--nats-url url] [--redis-url url] [--redis-prefix p]\n" +
			"  queue-distributor checksum [--redis-url url] [--redis-prefix p]",
		Start: func(log *slog.Logger) (config.Runner, error) { return service.New(cfg, log) },
	}.Serve(ctx, args, getenv, errOut)
}
