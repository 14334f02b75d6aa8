package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// The whole path of a queued call, every service a real process: the
// dialplan hands the caller to the gateway, the policy (queue_support.lua)
// puts them in the support queue, the distributor rings the agent's phone
// through the gateway's inbound connection and bridges the two; when the
// agent hangs up the policy hears "answered by 1000" and ends the call.
// With nobody logged in the same policy sends the caller to voicemail.
func TestPolicyQueuesCallerToAnAgent(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	redisSrv := testinfra.NewRedis(t)
	sim := fssim.New(fssim.Options{Hostname: "fs1"})
	defer sim.Close()
	fsLn, err := sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, natsSrv.URL(), "fs1="+fsLn.Addr().String()+":ClueCon")
	startPolicyRunner(t, natsSrv.URL())
	qd := startQueueDistributor(t, natsSrv.URL(), redisSrv.URL(), "qd-e2e")
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8090$`, gw.socket, false, "switchyard_policy=queue_support"),
		reachedRoute("voicemail"),
	})
	// The agent's phone rings 300 ms, and the agent talks for a second.
	sim.SetEndpoint("user/1000", fssim.Endpoint{AnswerAfter: 300 * time.Millisecond, HangupAfter: time.Second})
	var (
		mu      sync.Mutex
		bridged []string
	)
	stop := sim.Watch(func(e *esl.Event) {
		if e.Name() == "CHANNEL_BRIDGE" {
			mu.Lock()
			bridged = append(bridged, e.Get("Bridge-A-Unique-ID")+"<>"+e.Get("Bridge-B-Unique-ID"))
			mu.Unlock()
		}
	})
	defer stop()

	qd.do("PUT", "/v1/queues/support", map[string]any{"strategy": "longest-idle-agent"}, 201)
	qd.do("PUT", "/v1/agents/1000", map[string]any{"contact": "user/1000"}, 201)
	qd.do("PUT", "/v1/queues/support/tiers/1000", map[string]any{"level": 1}, 200)

	// Nobody logged in: voicemail at once.
	if got := reached(t, sim, fssim.CallSpec{Destination: "8090", CallerIDNumber: "+441111"}); got != "voicemail" {
		t.Fatalf("with no agent logged in the caller reached %q, want voicemail", got)
	}

	qd.do("POST", "/v1/agents/1000/login", nil, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8090", CallerIDNumber: "+442222"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Ended:
	case <-ctx.Done():
		t.Fatal("the queued call did not end: the agent never answered, or the policy never heard")
	}
	outcome, _ := call.Var("queue_outcome")
	agent, _ := call.Var("queue_agent")
	if outcome != "answered" || agent != "1000" {
		t.Fatalf("the policy saw outcome %q agent %q, want answered by 1000", outcome, agent)
	}
	mu.Lock()
	pairs := strings.Join(bridged, " ")
	mu.Unlock()
	if !strings.Contains(pairs, call.UUID) {
		t.Fatalf("the caller %s was never bridged (bridges: %q)", call.UUID, pairs)
	}
	if call.Cause() != "NORMAL_CLEARING" {
		t.Fatalf("the caller ended with %s, want the policy's NORMAL_CLEARING", call.Cause())
	}

	// The distributor's view agrees: one answered call, the agent idle
	// again after its wrap-up.
	eventually(t, 10*time.Second, "the agent back to idle", func() bool {
		_, state := qd.agent("1000")
		return state == "idle"
	})
	st := qd.do("GET", "/v1/queues/support/stats", nil, 200)
	if st["answered"] != float64(1) || st["waiting"] != float64(0) {
		t.Fatalf("stats %v, want 1 answered and nobody waiting", st)
	}
	// And the policy run ended normally, recorded on POLICIES.
	nc, _ := nats.Connect(natsSrv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if got := strings.Join(policyEvents(t, js, call.UUID, 2), " "); got != "policy.started policy.completed" {
		t.Fatalf("policy events %q", got)
	}
}
