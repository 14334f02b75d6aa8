// Command esl-gateway is FreeSWITCH's door into Switchyard: it takes the calls
// the dialplan's `socket` application hands over, keeps inbound ESL
// connections to every node, publishes what happens as events on JetStream
// and executes what other services ask over NATS. Run with --help for every
// setting.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/service"
)

func main() {
	config.Main("esl-gateway", func(ctx context.Context) (int, error) {
		if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil && !errors.Is(err, config.ErrHelp) {
			return 1, err
		}
		return 0, nil // --help exits 0 here
	})
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	var cfg service.Config
	_, err := config.Command{Name: "esl-gateway", Flags: cfg.Flags, LogLevel: &cfg.LogLevel, Instance: &cfg.Instance,
		Start: func(log *slog.Logger) (config.Runner, error) { return service.New(cfg, log) },
	}.Serve(ctx, args, getenv, out)
	return err
}
