package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// A real call through the gateway and the runner is replayed from its
// events alone — `policy-runner replay <uuid>` prints the path the caller
// took and says the replay retraced it; the same command with an edited
// script shows where the edit would have gone elsewhere.
func TestReplayRetracesARealCall(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{TimeScale: 0.05})
	defer sim.Close()
	gw := startGateway(t, natsSrv.URL(), "")
	startPolicyRunner(t, natsSrv.URL())
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8084$`, gw.socket, false, "switchyard_policy=ivr_menu"),
		reachedRoute("support"),
		reachedRoute("sales"),
	})
	call, err := sim.PlaceCall(context.Background(), fssim.CallSpec{Destination: "8084", CallerIDNumber: "+441234567890", Digits: "2", DigitsAfter: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { call.Hangup(""); <-call.Ended }()
	nc, _ := nats.Connect(natsSrv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if got := strings.Join(policyEvents(t, js, call.UUID, 2), " "); got != "policy.started policy.completed" {
		t.Fatalf("policy events: %s", got)
	}

	root, _ := filepath.Abs("..")
	replay := func(extra ...string) (int, string) {
		args := append([]string{"replay", call.UUID, "--nats-url", natsSrv.URL(), "--lib", filepath.Join(root, "lua", "lib")}, extra...)
		cmd := exec.Command(filepath.Join(binaries, "policy-runner"), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	code, out := replay()
	if code != 0 || !strings.Contains(out, "play_and_get_digits") || !strings.Contains(out, "transfer support XML default") || !strings.Contains(out, "same:") {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}

	src, _ := os.ReadFile(filepath.Join(root, "lua", "policies", "ivr_menu.lua"))
	edited := strings.Replace(string(src), `return call.transfer("support", "XML", "default")`, `return call.transfer("sales", "XML", "default")`, 1)
	if edited == string(src) {
		t.Fatal("the edit did not apply; ivr_menu.lua changed?")
	}
	f := filepath.Join(t.TempDir(), "ivr_menu.lua")
	os.WriteFile(f, []byte(edited), 0o644)
	code, out = replay("--policy", f)
	if code != 1 || !strings.Contains(out, "DIFFERENT") || !strings.Contains(out, "transfer sales XML default") {
		t.Fatalf("replay of an edit: exit %d\n%s", code, out)
	}
	if code, out := replay(); code != 0 {
		t.Fatalf("a second replay: exit %d\n%s", code, out)
	}
	code, out = func() (int, string) {
		cmd := exec.Command(filepath.Join(binaries, "policy-runner"), "replay", "no-such-call", "--nats-url", natsSrv.URL())
		b, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(b)
	}()
	if code != 2 || !strings.Contains(out, "no recorded policy run") {
		t.Fatalf("replay of an unknown call: exit %d\n%s", code, out)
	}
}

// The route table is edited over the admin REST and every runner follows
// it: a new route sends the next call to its policy, a deleted one sends
// it back to the default, a stale revision is refused.
func TestRouteTableOverREST(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{TimeScale: 0.05})
	defer sim.Close()
	gw := startGateway(t, natsSrv.URL(), "")
	base := startPolicyRunner(t, natsSrv.URL())
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^(44\d+)$`, gw.socket, false),
		reachedRoute("operator"),
		reachedRoute("support"),
	})
	reach := func(dest string) string {
		return reached(t, sim, fssim.CallSpec{Destination: dest, CallerIDNumber: "1", Digits: "2", DigitsAfter: 10 * time.Millisecond})
	}
	code, out := prREST(t, base, "GET", "/v1/routes", "")
	if routes, _ := out["routes"].([]any); code != 200 || len(routes) != 1 {
		t.Fatalf("the seeded table (--routes 7000=ivr_menu): %d %v", code, out)
	}
	staleRev := out["revision"]
	if code, out := prREST(t, base, "POST", "/v1/routes", `{"pattern":"44*","policy":"ivr_menu"}`); code != 200 {
		t.Fatalf("add: %d %v", code, out)
	}
	waitResolve(t, base, "4420", "ivr_menu")
	if got := reach("4420"); got != "support" {
		t.Fatalf("through the new route the caller reached %q", got)
	}
	if code, out := prREST(t, base, "PUT", "/v1/routes", `{"routes":[],"revision":`+jsonNumber(staleRev)+`}`); code != 409 {
		t.Fatalf("a stale revision: %d %v", code, out)
	}
	if code, out := prREST(t, base, "POST", "/v1/routes", `{"pattern":"~(","policy":"x"}`); code != 400 {
		t.Fatalf("a broken pattern: %d %v", code, out)
	}
	if code, out := prREST(t, base, "DELETE", "/v1/routes/44%2A", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, out)
	}
	waitResolve(t, base, "4420", "default")
	if got := reach("4420"); got != "operator" {
		t.Fatalf("after the delete the caller reached %q", got)
	}
}

func jsonNumber(v any) string {
	f, _ := v.(float64)
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func waitResolve(t *testing.T, base, dest, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, out := prREST(t, base, "GET", "/v1/routes/resolve?destination="+dest, "")
		if out["policy"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s resolves to %v, want %s", dest, out["policy"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
