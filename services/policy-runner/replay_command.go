package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/replay"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// replayCommand is `policy-runner replay <call-uuid>`: it reads the call's
// recorded policy run from NATS, runs the same policy version on the same
// inputs, prints where it went and says whether it ended as the call did.
// Exit 0: the replay retraced the call; 1: it did not (or, with --policy,
// the edited script takes another path); 2: it could not run.
func replayCommand(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (int, error) {
	var natsURL, lib, policyFile string
	set := subcommand("policy-runner replay <call-uuid>", getenv, errOut)
	set.String(&natsURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	set.String(&lib, "lib", "SWITCHYARD_PR_LIB", "lua/lib", "policy library directory for require")
	set.String(&policyFile, "policy", "", "", "replay this script instead of the recorded version (what would my edit have done?)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if errors.Is(set.Parse(args), config.ErrHelp) {
			return 2, config.ErrHelp
		}
		return 2, fmt.Errorf("usage: policy-runner replay <call-uuid> [--nats-url url] [--lib dir] [--policy file.lua]")
	}
	callID := args[0]
	if err := set.Parse(args[1:]); err != nil {
		return 2, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	kv, js, closeStore, err := openPolicyStore(ctx, natsURL, "policy-runner replay")
	if err != nil {
		return 2, err
	}
	defer closeStore()
	rec, err := replay.Fetch(ctx, js, callID)
	if err != nil {
		return 2, err
	}
	ev := rec.Event
	var source string
	if policyFile != "" {
		b, err := os.ReadFile(policyFile)
		if err != nil {
			return 2, fmt.Errorf("--policy: %w", err)
		}
		source = string(b)
	} else {
		p, err := kv.GetVersion(ctx, ev.Policy, ev.Version)
		if err != nil {
			return 2, fmt.Errorf("%w; the version may be gone from the store (or came from --policy-store=dir): pass the script with --policy", err)
		}
		source = p.Source
	}
	fmt.Fprintf(out, "call %s: policy %s version %s, recorded %s", callID, ev.Policy, ev.Version, rec.Type)
	if ev.Error != "" {
		fmt.Fprintf(out, " (%s)", ev.Error)
	}
	fmt.Fprintln(out)
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	res, err := replay.Run(ctx, sb, lib, rec, source)
	if err != nil {
		if errors.Is(err, replay.ErrNotRecorded) {
			return 1, err
		}
		return 2, err
	}
	for _, line := range res.Trace {
		fmt.Fprintln(out, "  "+line)
	}
	if res.Err != nil {
		fmt.Fprintf(out, "replay ended with: %v\n", res.Err)
	}
	switch {
	case res.Diverged != nil:
		fmt.Fprintf(out, "DIFFERENT: %v\n", res.Diverged)
		return 1, nil
	case res.Unused > 0:
		fmt.Fprintf(out, "DIFFERENT: the replay ended with %d recorded inputs unused\n", res.Unused)
		return 1, nil
	case !res.Same:
		fmt.Fprintln(out, "DIFFERENT: the replay ended otherwise than the call")
		return 1, nil
	}
	fmt.Fprintln(out, "same: the replay retraced the call")
	return 0, nil
}
