// Command connector-proxy answers policies' data look-ups — Salesforce REST,
// legacy orgs through the SOAP service-gateway, core-api, generic HTTP —
// over NATS (connector.query) within each caller's deadline, failing fast
// when an upstream is slow or down (docs/operations/connector-proxy.md).
package main

import (
	"context"
	"io"
	"os"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/service"
)

func main() {
	config.Main("connector-proxy", func(ctx context.Context) (int, error) { return run(ctx, os.Args[1:], os.Getenv, os.Stderr) })
}

func run(ctx context.Context, args []string, getenv func(string) string, errOut io.Writer) (int, error) {
	var cfg service.Config
	set := config.New("connector-proxy")
	set.Getenv(getenv)
	set.SetOutput(errOut)
	cfg.Flags(set)
	if err := set.Parse(args); err != nil {
		return 2, err
	}
	log, err := config.Logger(errOut, cfg.LogLevel, "connector-proxy", cfg.Instance)
	if err != nil {
		return 2, err
	}
	svc, err := service.New(cfg, log)
	if err != nil {
		return 1, err
	}
	return 0, svc.Run(ctx)
}
