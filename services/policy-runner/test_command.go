package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/policystore"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/schedulefile"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// testCommand is `policy-runner test <policy> --call call.json`: it prints
// the policy's trace and exits non-zero when the policy fails (or, when the
// call file has expectations, when they are not met).
func testCommand(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (int, error) {
	var callFile, lib, schedules, natsURL string
	set := subcommand("policy-runner test <policy.lua|stored-policy-name>", getenv, errOut)
	set.String(&callFile, "call", "", "", "call.json: call.started data and the scripted caller (required)")
	set.String(&lib, "lib", "", "", "policy library directory for require (default: lib/ next to the policy's folder)")
	set.String(&schedules, "schedules", "", "", "business-hours schedules (default: schedules.json next to the policy's folder)")
	set.String(&natsURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server, for a policy given by its stored name")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if errors.Is(set.Parse(args), config.ErrHelp) {
			return 2, config.ErrHelp
		}
		return 2, fmt.Errorf("usage: policy-runner test <policy.lua|stored-policy-name> --call call.json [--lib dir] [--schedules file]")
	}
	policy := args[0]
	if err := set.Parse(args[1:]); err != nil {
		return 2, err
	}
	if callFile == "" {
		return 2, fmt.Errorf("--call is required: a JSON file with the call.started data and the caller's digits")
	}
	src, err := readPolicy(ctx, policy, natsURL)
	if err != nil {
		return 2, err
	}
	script, err := dryrun.LoadScript(callFile)
	if err != nil {
		return 2, err
	}
	if lib == "" {
		lib = besidePolicies(policy, "lib")
	}
	if schedules == "" {
		schedules = besidePolicies(policy, "schedules.json")
	}
	sched, err := schedulefile.Open(schedules, nil)
	if err != nil {
		return 2, err
	}
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	if problems, err := luaapi.Vet(sb, string(src)); err == nil && len(problems) > 0 {
		fmt.Fprintln(out, "FAIL "+policy)
		for _, p := range problems {
			fmt.Fprintln(out, "  vet: "+p.String())
		}
		return 1, nil
	}
	res := dryrun.Run(ctx, sb, policy, string(src), dryrun.Options{LibDir: lib, Schedules: sched}, script)
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

// subcommand is a subcommand's settings: flags, and the environment for
// the ones the service shares, listed by --help like the service's own.
func subcommand(name string, getenv func(string) string, errOut io.Writer) *config.Set {
	set := config.New(name)
	set.Getenv(getenv)
	set.SetOutput(errOut)
	return set
}

// openPolicyStore connects to NATS and opens the policy bucket, for the
// commands that read stored policies; close undoes both.
func openPolicyStore(ctx context.Context, natsURL, client string) (*policystore.KV, jetstream.JetStream, func(), error) {
	nc, err := nats.Connect(natsURL, nats.Name(client), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to NATS at %s: %w (set --nats-url)", natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	kv, stop, err := policystore.Open(ctx, js)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return kv, js, func() { stop(); nc.Close() }, nil
}

// besidePolicies is lua/<name> for a policy file in lua/policies, and
// lua/<name> under the working directory for a stored policy.
func besidePolicies(policy, name string) string {
	if !strings.ContainsRune(policy, '/') && !strings.HasSuffix(policy, ".lua") {
		return filepath.Join("lua", name)
	}
	return filepath.Join(filepath.Dir(policy), "..", name)
}

// readPolicy reads a policy file, or, when policy is a stored policy's
// name and no such file exists, its latest version from the KV store.
func readPolicy(ctx context.Context, policy, natsURL string) ([]byte, error) {
	src, err := os.ReadFile(policy)
	if err == nil {
		return src, nil
	}
	if strings.ContainsRune(policy, '/') || strings.HasSuffix(policy, ".lua") {
		return nil, fmt.Errorf("policy %s: %w", policy, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	kv, _, closeStore, err := openPolicyStore(ctx, natsURL, "policy-runner test")
	if err != nil {
		return nil, fmt.Errorf("%q is no file, and the policy store is out of reach: %w", policy, err)
	}
	defer closeStore()
	p, err := kv.Get(ctx, policy)
	if err != nil {
		return nil, fmt.Errorf("%q is no file and no stored policy: %w", policy, err)
	}
	return []byte(p.Source), nil
}
