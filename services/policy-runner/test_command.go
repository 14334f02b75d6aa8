package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// testCommand is `policy-runner test <policy> --call call.json`: it prints
// the policy's trace and exits non-zero when the policy fails (or, when the
// call file has expectations, when they are not met).
func testCommand(ctx context.Context, args []string, out, errOut io.Writer) (int, error) {
	fs := flag.NewFlagSet("policy-runner test", flag.ContinueOnError)
	fs.SetOutput(errOut)
	callFile := fs.String("call", "", "call.json: call.started data and the scripted caller (required)")
	lib := fs.String("lib", "", "policy library directory for require (default: lib/ next to the policy's folder)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return 2, fmt.Errorf("usage: policy-runner test <policy.lua> --call call.json [--lib dir]")
	}
	policy := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return 2, err
	}
	if *callFile == "" {
		return 2, fmt.Errorf("--call is required: a JSON file with the call.started data and the caller's digits")
	}
	src, err := os.ReadFile(policy)
	if err != nil {
		return 2, fmt.Errorf("policy %s: %w (stored policies by name need the policy store, not available yet)", policy, err)
	}
	script, err := dryrun.LoadScript(*callFile)
	if err != nil {
		return 2, err
	}
	if *lib == "" {
		*lib = defaultLib(policy)
	}
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	res := dryrun.Run(ctx, sb, policy, string(src), *lib, script)
	for _, line := range res.Trace {
		fmt.Fprintln(out, "  "+line)
	}
	if problem := script.Check(res); problem != "" {
		fmt.Fprintln(out, "FAIL "+policy)
		fmt.Fprintln(out, problem)
		return 1, nil
	}
	if res.Err != nil {
		fmt.Fprintf(out, "ok   %s (failed as expected: %v)\n", policy, res.Err)
	} else {
		fmt.Fprintf(out, "ok   %s\n", policy)
	}
	return 0, nil
}

// defaultLib is lua/lib for a policy in lua/policies.
func defaultLib(policy string) string {
	dir := policy[:max(strings.LastIndex(policy, "/"), 0)]
	if dir == "" {
		dir = "."
	}
	return dir + "/../lib"
}
