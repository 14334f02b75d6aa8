package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

func startPolicyRunner(t *testing.T, natsURL string) string {
	t.Helper()
	root, _ := filepath.Abs("..")
	admin := testinfra.FreeAddr(t)
	log := &bytes.Buffer{}
	cmd := exec.Command(filepath.Join(binaries, "policy-runner"))
	cmd.Env = append(os.Environ(), "SWITCHYARD_NATS_URL="+natsURL, "SWITCHYARD_ADMIN_TOKEN=e2e-token",
		"SWITCHYARD_PR_ADMIN_ADDR="+admin, "SWITCHYARD_PR_POLICIES="+filepath.Join(root, "lua", "policies"),
		"SWITCHYARD_PR_LIB="+filepath.Join(root, "lua", "lib"), "SWITCHYARD_PR_ROUTES=7000=ivr_menu",
		"SWITCHYARD_PR_SCHEDULES="+filepath.Join(root, "lua", "schedules.json"))
	w := syncWriter{log, &sync.Mutex{}}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("policy-runner log:\n%s", lastLines(log.String(), 30))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return "http://" + admin
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy-runner not ready:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func policyEvents(t *testing.T, js jetstream.JetStream, callID string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "POLICIES", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"policies." + callID + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for len(types) < want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("policy events for %s: %v (got %v)", callID, err, types)
		}
		e, _ := events.Parse(m.Data())
		types = append(types, e.Type)
	}
	return types
}

// A call handed over by the dialplan runs its routing policy: the
// simulator's caller is answered and sent on as the Lua says; a policy that
// cannot run sends the caller to the fallback instead of silence.
func TestCallsRunTheirPolicies(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{TimeScale: 0.05})
	defer sim.Close()
	gw := startGateway(t, natsSrv.URL(), "")
	startPolicyRunner(t, natsSrv.URL())
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8084$`, gw.socket, false, "switchyard_policy=default"),
		fssim.SocketRoute(`^5555$`, gw.socket, false, "switchyard_policy=no_such_policy"),
		fssim.SocketRoute(`^7000$`, gw.socket, false),
		reachedRoute("operator"),
		reachedRoute("support"),
	})
	nc, _ := nats.Connect(natsSrv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	for _, tc := range []struct {
		dest, digits, reached string
		policyEvents          string
	}{
		{"8084", "", "operator", "policy.started policy.completed"},
		{"7000", "2", "support", "policy.started policy.completed"}, // the route table picks ivr_menu
		{"5555", "", "operator", "policy.failed"},
	} {
		call, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: tc.dest, CallerIDNumber: "+441234567890", Digits: tc.digits, DigitsAfter: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			if v, _ := call.Var("reached"); v == tc.reached {
				break
			}
			if time.Now().After(deadline) {
				v, _ := call.Var("reached")
				t.Fatalf("%s: the caller reached %q, want %q", tc.dest, v, tc.reached)
			}
			time.Sleep(10 * time.Millisecond)
		}
		got := strings.Join(policyEvents(t, js, call.UUID, len(strings.Fields(tc.policyEvents))), " ")
		if got != tc.policyEvents {
			t.Fatalf("%s: policy events %q, want %q", tc.dest, got, tc.policyEvents)
		}
		call.Hangup("")
		<-call.Ended
	}
}

func mustRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// reachedRoute is an extension a policy sends callers to: the call is
// marked reached=<ext> and parked.
func reachedRoute(ext string) fssim.Route {
	return fssim.Route{Name: ext, Match: mustRE("^" + ext + "$"), Actions: []fssim.Action{{App: "set", Data: "reached=" + ext}, {App: "park"}}}
}

// reached places a call and returns the extension its policy sent it to
// ("" if none within 10 s); the call is hung up after.
func reached(t *testing.T, sim *fssim.Sim, spec fssim.CallSpec) string {
	t.Helper()
	call, err := sim.PlaceCall(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { call.Hangup(""); <-call.Ended }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := call.Var("reached"); ok {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}

func prREST(t *testing.T, base, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer e2e-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A new version of a policy put through the admin REST takes effect on
// the next call without a restart; a rollback brings the old one back;
// a broken policy is refused with its line.
func TestPolicyVersionsTakeEffectWithoutRestart(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{TimeScale: 0.05})
	defer sim.Close()
	gw := startGateway(t, natsSrv.URL(), "")
	base := startPolicyRunner(t, natsSrv.URL())
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8084$`, gw.socket, false, "switchyard_policy=default"),
		reachedRoute("operator"),
		reachedRoute("support"),
	})
	reach := func() string { return reached(t, sim, fssim.CallSpec{Destination: "8084", CallerIDNumber: "1"}) }
	if got := reach(); got != "operator" {
		t.Fatalf("seeded default policy sent the caller to %q", got)
	}
	code, out := prREST(t, base, "PUT", "/v1/policies/default", "call.answer()\ncall.transfer('support', 'XML', 'default')\n")
	if code != 200 {
		t.Fatalf("put: %d %v", code, out)
	}
	if got := reach(); got != "support" {
		t.Fatalf("after the new version the caller reached %q", got)
	}
	_, out = prREST(t, base, "GET", "/v1/policies/default/versions", "")
	versions, _ := out["versions"].([]any)
	if len(versions) != 2 {
		t.Fatalf("versions: %v", out)
	}
	first := versions[0].(map[string]any)["version"].(string)
	if code, out := prREST(t, base, "POST", "/v1/policies/default/rollback", `{"version":"`+first+`"}`); code != 200 {
		t.Fatalf("rollback: %d %v", code, out)
	}
	if got := reach(); got != "operator" {
		t.Fatalf("after the rollback the caller reached %q", got)
	}
	code, out = prREST(t, base, "PUT", "/v1/policies/default", "call.answer(\nif then")
	if e, _ := out["error"].(map[string]any); code != 400 || e["code"] != "invalid_policy" {
		t.Fatalf("a broken policy was accepted: %d %v", code, out)
	}
	code, out = prREST(t, base, "PUT", "/v1/policies/default", "call.anwser()\n")
	if e, _ := out["error"].(map[string]any); code != 400 || !strings.Contains(fmt.Sprint(e["message"]), "did you mean answer") {
		t.Fatalf("a policy calling call.anwser was accepted: %d %v", code, out)
	}
	code, out = prREST(t, base, "POST", "/v1/policies/ivr_menu/dry-run", `{"digits":["2"]}`)
	if trace := fmt.Sprint(out["trace"]); code != 200 || !strings.Contains(trace, "transfer support XML default") {
		t.Fatalf("dry run: %d %v", code, out)
	}
	if code, _ := prREST(t, base, "GET", "/v1/policies/nope", ""); code != 404 {
		t.Fatalf("missing policy: %d", code)
	}
	if code, _ := prREST(t, base, "GET", "/v1/policies", ""); code != 200 {
		t.Fatalf("list: %d", code)
	}
}
