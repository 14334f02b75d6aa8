// Command policy-runner runs customer routing policies (sandboxed Lua), one
// per call. Subcommands:
//
//	policy-runner test <policy.lua> --call call.json [--lib dir]
//	    dry-run a policy against a scripted call: no NATS, no gateway.
//
// Serving calls over NATS is being built (issue 4; see docs/lua-api.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "policy-runner:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, out, errOut io.Writer) (int, error) {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(out, "usage: policy-runner test <policy.lua> --call call.json [--lib dir]")
		fmt.Fprintln(out, "  (serving calls over NATS is not available yet: issue 4 is in progress)")
		return 0, nil
	}
	switch args[0] {
	case "test":
		return testCommand(ctx, args[1:], out, errOut)
	}
	return 2, fmt.Errorf("unknown command %q: try `policy-runner --help`", args[0])
}
