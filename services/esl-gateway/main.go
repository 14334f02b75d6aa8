// Command esl-gateway is FreeSWITCH's door into Switchyard: it takes the calls
// the dialplan's `socket` application hands over, keeps inbound ESL
// connections to every node, publishes what happens as events on JetStream
// and executes what other services ask over NATS. Run with --help for every
// setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "esl-gateway:", err)
		os.Exit(1)
	}
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
