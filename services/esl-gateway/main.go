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
	set := config.New("esl-gateway")
	set.Getenv(getenv)
	set.SetOutput(out)
	cfg.Flags(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	log, err := config.Logger(out, cfg.LogLevel, "esl-gateway", cfg.Instance)
	if err != nil {
		return err
	}
	svc, err := service.New(cfg, log)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
