// Command push-notifier wakes mobile agents: it consumes push.requested
// from the PUSH stream and sends Apple VoIP/alert pushes (APNs, through
// sideshow/apns2) and Android pushes (FCM HTTP v1) to the user's
// registered devices, exactly once or not at all, reporting push.sent,
// push.failed and push.token.removed.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/service"
)

func main() {
	config.Main("push-notifier", func(ctx context.Context) (int, error) { return run(ctx, os.Args[1:], os.Getenv, os.Stderr) })
}

func run(ctx context.Context, args []string, getenv func(string) string, errOut io.Writer) (int, error) {
	var cfg service.Config
	return config.Command{Name: "push-notifier", Flags: cfg.Flags, LogLevel: &cfg.LogLevel, Instance: &cfg.Instance,
		Start: func(log *slog.Logger) (config.Runner, error) { return service.New(cfg, log) },
	}.Serve(ctx, args, getenv, errOut)
}
