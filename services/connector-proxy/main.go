// Command connector-proxy answers policies' data look-ups — Salesforce REST,
// legacy orgs through the SOAP service-gateway, core-api, generic HTTP —
// over NATS (connector.query) within each caller's deadline, failing fast
// when an upstream is slow or down (docs/operations/connector-proxy.md).
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/service"
)

func main() {
	config.Main("connector-proxy", func(ctx context.Context) (int, error) { return run(ctx, os.Args[1:], os.Getenv, os.Stderr) })
}

func run(ctx context.Context, args []string, getenv func(string) string, errOut io.Writer) (int, error) {
	var cfg service.Config
	return config.Command{Name: "connector-proxy", Flags: cfg.Flags, LogLevel: &cfg.LogLevel, Instance: &cfg.Instance,
		Start: func(log *slog.Logger) (config.Runner, error) { return service.New(cfg, log) },
	}.Serve(ctx, args, getenv, errOut)
}
