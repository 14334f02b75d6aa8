package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestDevstackRunsEveryService is `make run` for 20 seconds: the five
// services come up as processes beside NATS, Redis and the simulator, the
// simulator's callers go through the IVR policy and the queue policy, and
// agents answer queued callers. It stops by itself and must exit 0.
func TestDevstackRunsEveryService(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "devstack")
	build := exec.Command("go", "build", "-o", bin, "./cmd/devstack")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build devstack: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--for", "20s", "--rate", "2", "--logs", t.TempDir())
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("devstack: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`final: .*policies ok (\d+) failed (\d+) \| queue joined (\d+) answered (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no final summary:\n%s", out.String())
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	if n(1) == 0 || n(2) != 0 || n(3) == 0 || n(4) == 0 {
		t.Fatalf("policies ok %d failed %d, queue joined %d answered %d:\n%s", n(1), n(2), n(3), n(4), out.String())
	}
	for _, svc := range []string{"esl-gateway", "policy-runner", "queue-distributor", "connector-proxy", "push-notifier"} {
		if !bytes.Contains(out.Bytes(), []byte(svc)) {
			t.Fatalf("the banner does not name %s:\n%s", svc, out.String())
		}
	}
}
