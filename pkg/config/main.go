package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a service's command with a context that ends on SIGINT or
// SIGTERM (graceful shutdown), prints its error as "<name>: <error>"
// (not for --help, which has printed the usage) and exits with its code,
// 1 when it failed with code 0.
func Main(name string, run func(ctx context.Context) (int, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx)
	stop()
	os.Exit(exitCode(name, code, err, os.Stderr))
}

func exitCode(name string, code int, err error, errOut io.Writer) int {
	if err == nil || errors.Is(err, ErrHelp) {
		return code
	}
	fmt.Fprintf(errOut, "%s: %v\n", name, err)
	if code == 0 {
		code = 1
	}
	return code
}
