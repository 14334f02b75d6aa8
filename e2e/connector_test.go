package e2e

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/crmfake/salesforce"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// cpProc is the connector-proxy running as its own process.
type cpProc struct {
	admin string
	token string
}

// startConnectorProxy starts the service against natsURL and waits until
// it is ready; extra are more KEY=value settings.
func startConnectorProxy(t *testing.T, natsURL string, extra ...string) *cpProc {
	t.Helper()
	p := &cpProc{admin: testinfra.FreeAddr(t), token: "e2e-token"}
	runService(t, "connector-proxy", p.admin, 5*time.Second, append([]string{"SWITCHYARD_NATS_URL=" + natsURL,
		"SWITCHYARD_ADMIN_TOKEN=" + p.token, "SWITCHYARD_CP_ADMIN_ADDR=" + p.admin, "SWITCHYARD_CP_INSTANCE=cp-e2e",
		"SWITCHYARD_CP_SHUTDOWN_GRACE=2s", "SWITCHYARD_LOG_LEVEL=debug"}, extra...)...)
	return p
}

// do calls the admin REST with t (so that it is safe in subtests) and
// returns the status and body.
func (p *cpProc) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return adminCall(t, p.admin, p.token, method, path, body)
}

// outcomes sums switchyard_cp_requests_total by outcome.
func (p *cpProc) outcomes(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "switchyard_cp_requests_total{") {
			continue
		}
		labels, value, ok := strings.Cut(line[len("switchyard_cp_requests_total{"):], "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(labels, ",") {
			if o, ok := strings.CutPrefix(l, `outcome="`); ok {
				out[strings.TrimSuffix(o, `"`)] += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queueEvent is a queue.member.joined or .answered event as heard on NATS.
type queueEvent struct {
	queue    string
	joinedMS int64
	agent    string
}

// The end-to-end: the shipped policy vip_lookup.lua looks the
// caller up in Salesforce through the connector-proxy (every service a real
// process, Salesforce a wire-level fake); a VIP goes to the VIP queue and is
// answered by the VIP agent, anyone else to the default queue. With
// Salesforce down or hanging, the same policy routes even a VIP caller to the
// default queue, and within its 800 ms look-up deadline.
func TestConnectorLookupRoutesVIPsAndFailsSafe(t *testing.T) {
	const (
		lookupDeadline = 800 * time.Millisecond // vip_lookup.lua's timeout
		// margin covers what is not the look-up: the call reaching the
		// gateway, the policy starting, the enqueue. Measured with a
		// healthy Salesforce it is 20-150 ms with -race on the 2-core VM;
		// the rest is headroom for a loaded machine.
		margin = 500 * time.Millisecond
	)
	natsSrv := testinfra.NewNATS(t)
	redisSrv := testinfra.NewRedis(t)

	// Salesforce: a connected app, and accounts by phone. The "down" and
	// "hangs" callers are VIPs too, each asked about only once so that no
	// cached (or stale) answer can stand in for Salesforce.
	sf := salesforce.New(salesforce.Options{})
	sf.AddClient("e2e-client", "e2e-secret")
	accounts := []struct{ id, phone, tier string }{
		{"001000000000001AAA", "+441000000001", "VIP"},
		{"001000000000002AAA", "+441000000002", "Standard"},
		{"001000000000003AAA", "+441000000003", "VIP"},
		{"001000000000004AAA", "+441000000004", "VIP"},
	}
	for _, a := range accounts {
		sf.Data.Put("Account", soql.Record{"Id": a.id, "Name": "Caller " + a.phone, "Phone": a.phone, "Tier__c": a.tier})
	}
	sfSrv := httptest.NewServer(sf)
	defer sfSrv.Close()

	sim := fssim.New(fssim.Options{Hostname: "fs1"})
	defer sim.Close()
	fsLn, err := sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, natsSrv.URL(), "fs1="+fsLn.Addr().String()+":ClueCon")
	cp := startConnectorProxy(t, natsSrv.URL())
	startPolicyRunner(t, natsSrv.URL())
	qd := startQueueDistributor(t, natsSrv.URL(), redisSrv.URL(), "qd-e2e")
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8084$`, gw.socket, false, "switchyard_policy=vip_lookup"),
		reachedRoute("voicemail"),
	})

	// The call's tenant is "default" (no switchyard_tenant on the channel).
	if code, raw := cp.do(t, "PUT", "/v1/connectors/default/salesforce", map[string]any{
		"type": "salesforce",
		"salesforce": map[string]any{"login_url": sfSrv.URL, "auth": "client_credentials",
			"client_id": "e2e-client", "client_secret": "e2e-secret"},
	}); code != 201 {
		t.Fatalf("PUT connector: %d %s", code, raw)
	}

	// A queue per tier and an agent in each; agents answer after 200 ms
	// and talk 300 ms.
	agents := map[string]string{"vip": "2001", "default": "2002"}
	for q, a := range agents {
		qd.do("PUT", "/v1/queues/"+q, map[string]any{"strategy": "longest-idle-agent"}, 201)
		qd.do("PUT", "/v1/agents/"+a, map[string]any{"contact": "user/" + a}, 201)
		qd.do("PUT", "/v1/queues/"+q+"/tiers/"+a, map[string]any{"level": 1}, 200)
		qd.do("POST", "/v1/agents/"+a+"/login", nil, 200)
		sim.SetEndpoint("user/"+a, fssim.Endpoint{AnswerAfter: 200 * time.Millisecond, HangupAfter: 300 * time.Millisecond})
	}

	// Which queue each caller joined, and when, and who answered.
	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var (
		mu       sync.Mutex
		joined   = map[string]queueEvent{}
		answered = map[string]queueEvent{}
	)
	sub, err := nc.Subscribe("queues.*.member.*", func(m *nats.Msg) {
		e, err := events.Parse(m.Data)
		if err != nil {
			return
		}
		q := strings.Split(m.Subject, ".")[1]
		switch {
		case strings.HasSuffix(m.Subject, ".member.joined"):
			var d struct {
				Member struct {
					CallID   string `json:"call_id"`
					JoinedMS int64  `json:"joined_ms"`
				} `json:"member"`
			}
			if e.DecodeData(&d) == nil {
				mu.Lock()
				joined[d.Member.CallID] = queueEvent{queue: q, joinedMS: d.Member.JoinedMS}
				mu.Unlock()
			}
		case strings.HasSuffix(m.Subject, ".member.answered"):
			var d struct {
				CallID string `json:"call_id"`
				Agent  string `json:"agent"`
			}
			if e.DecodeData(&d) == nil {
				mu.Lock()
				answered[d.CallID] = queueEvent{queue: q, agent: d.Agent}
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, caller string
		salesforce   func() (undo func()) // nil: healthy
		wantQueue    string
		wantOutcome  string // the proxy's outcome label for the look-up
	}{
		{name: "VIP caller to the VIP queue", caller: "+441000000001", wantQueue: "vip", wantOutcome: "ok"},
		{name: "standard caller to the default queue", caller: "+441000000002", wantQueue: "default", wantOutcome: "ok"},
		{name: "unknown caller to the default queue", caller: "+449999999999", wantQueue: "default", wantOutcome: "ok"},
		{name: "Salesforce down: VIP to the default queue in time", caller: "+441000000003", wantQueue: "default", wantOutcome: "upstream_error",
			salesforce: func() func() { sf.SetDown(true); return func() { sf.SetDown(false) } }},
		{name: "Salesforce hangs: VIP to the default queue in time", caller: "+441000000004", wantQueue: "default", wantOutcome: "timeout",
			salesforce: func() func() { sf.SetLatency(5 * time.Second); return func() { sf.SetLatency(0) } }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.salesforce != nil {
				defer tc.salesforce()()
			}
			before := cp.outcomes(t)
			hitsBefore := sf.Hits()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			call, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: tc.caller})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { call.Hangup(""); <-call.Ended }()

			// It joins a queue...
			var j queueEvent
			for {
				mu.Lock()
				ev, ok := joined[call.UUID]
				mu.Unlock()
				if ok {
					j = ev
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the caller joined no queue (reached %q)", varOf(call, "reached"))
				case <-call.Ended:
					t.Fatalf("the call ended (%s) without joining a queue", call.Cause())
				case <-time.After(10 * time.Millisecond):
				}
			}
			took := time.UnixMilli(j.joinedMS).Sub(start)
			t.Logf("joined %s %v after the call started (Salesforce hits %d)", j.queue, took.Round(time.Millisecond), sf.Hits()-hitsBefore)
			if j.queue != tc.wantQueue {
				t.Fatalf("the caller joined %q, want %q", j.queue, tc.wantQueue)
			}
			if took > lookupDeadline+margin {
				t.Fatalf("the caller joined %v after the call started, more than the look-up's %v plus %v", took, lookupDeadline, margin)
			}
			if q := varOf(call, "switchyard_queue"); q != tc.wantQueue {
				t.Fatalf("switchyard_queue %q, want %q", q, tc.wantQueue)
			}

			// ...and the queue's agent answers; the policy then ends the call.
			select {
			case <-call.Ended:
			case <-ctx.Done():
				t.Fatal("the queued call did not end: the agent never answered, or the policy never heard")
			}
			if call.Cause() != "NORMAL_CLEARING" {
				t.Fatalf("the caller ended with %s, want the policy's NORMAL_CLEARING", call.Cause())
			}
			mu.Lock()
			a := answered[call.UUID]
			mu.Unlock()
			if a.queue != tc.wantQueue || a.agent != agents[tc.wantQueue] {
				t.Fatalf("answered in %q by %q, want %q by %q", a.queue, a.agent, tc.wantQueue, agents[tc.wantQueue])
			}

			// The look-up was the proxy's, with the outcome expected.
			after := cp.outcomes(t)
			if after[tc.wantOutcome]-before[tc.wantOutcome] != 1 {
				t.Fatalf("proxy outcomes went from %v to %v, want one more %q", before, after, tc.wantOutcome)
			}
			if sf.Hits() == hitsBefore {
				t.Fatal("Salesforce was never asked")
			}
		})
	}
}

func varOf(c *fssim.Channel, name string) string {
	v, _ := c.Var(name)
	return v
}
