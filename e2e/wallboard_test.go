package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/e2e/internal/browser"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// pageNumbers reads every number the wallboard shows: queue -> field ->
// value ("agents.in_call" for nested ones).
const pageNumbers = `(() => {
	const out = {};
	for (const el of document.querySelectorAll("[data-queue][data-field][data-value]")) {
		(out[el.dataset.queue] ??= {})[el.dataset.field] = el.dataset.value === "" ? null : Number(el.dataset.value);
	}
	return out;
})()`

// The wallboard served by the real queue-distributor, with real callers
// queued by their policy and a real agent in a call, shows the numbers
// the REST stats give, and follows them when a caller hangs up.
func TestWallboardShowsTheRESTStats(t *testing.T) {
	b := browser.New(t)
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
	qd := startQueueDistributor(t, natsSrv.URL(), redisSrv.URL(), "qd-wallboard")
	sim.SetDialplan([]fssim.Route{fssim.SocketRoute(`^8090$`, gw.socket, false, "switchyard_policy=queue_support")})
	sim.SetEndpoint("user/1000", fssim.Endpoint{AnswerAfter: 100 * time.Millisecond}) // answers and stays

	qd.do("PUT", "/v1/queues/support", map[string]any{"strategy": "longest-idle-agent"}, 201)
	for _, id := range []string{"1000", "1001"} {
		qd.do("PUT", "/v1/agents/"+id, map[string]any{"contact": "user/" + id}, 201)
		qd.do("PUT", "/v1/queues/support/tiers/"+id, map[string]any{"level": 1}, 200)
	}
	qd.do("POST", "/v1/agents/1000/login", nil, 200)
	qd.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	place := func(n int) *fssim.Channel {
		c, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8090", CallerIDNumber: fmt.Sprintf("+4400%d", n)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The first caller gets agent 1000, who stays in the call; the next
	// two wait (1001 is on a break).
	first := place(1)
	eventually(t, 15*time.Second, "agent 1000 in a call", func() bool { _, st := qd.agent("1000"); return st == "in_call" })
	second := place(2)
	third := place(3)
	eventually(t, 15*time.Second, "two callers waiting", func() bool { return queueStat(qd, "waiting") == 2 })

	p, err := b.Open(ctx, "http://"+qd.admin+"/wallboard#token="+qd.token)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	shown := matchREST(ctx, t, p, qd)
	for field, want := range map[string]float64{"waiting": 2, "agents.in_call": 1, "agents.on_break": 1, "abandoned": 0} {
		if shown[field] != want {
			t.Errorf("%s shown as %v, want %v", field, shown[field], want)
		}
	}

	// A waiting caller gives up: the open page follows by itself.
	third.Hangup("NORMAL_CLEARING")
	eventually(t, 15*time.Second, "the abandoned call in the stats", func() bool { return queueStat(qd, "abandoned") == 1 })
	shown = matchREST(ctx, t, p, qd)
	if shown["waiting"] != 1 || shown["abandoned"] != 1 || shown["abandon_rate_pct"] <= 0 {
		t.Errorf("after one caller hung up the page shows waiting %v, abandoned %v, abandon rate %v; want 1, 1, above 0",
			shown["waiting"], shown["abandoned"], shown["abandon_rate_pct"])
	}

	// Everyone hangs up, so the policies waiting on the queue end before
	// the services stop (a policy-runner waits for its running policies).
	first.Hangup("NORMAL_CLEARING")
	second.Hangup("NORMAL_CLEARING")
	eventually(t, 15*time.Second, "the queue empty and the agent free", func() bool {
		_, st := qd.agent("1000")
		return queueStat(qd, "waiting") == 0 && st != "in_call"
	})
}

func queueStat(qd *qdProc, field string) float64 {
	v, _ := qd.do("GET", "/v1/queues/support/stats", nil, 200)[field].(float64)
	return v
}

// matchREST waits until every number the page shows for the support queue
// equals GET /v1/stats (the longest wait within the second the stream
// lags), and returns them. It fails if the page shows a number the REST
// has not, or never agrees.
func matchREST(ctx context.Context, t *testing.T, p *browser.Page, qd *qdProc) map[string]float64 {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var page map[string]map[string]*float64
		if err := p.Eval(ctx, pageNumbers, &page); err != nil {
			t.Fatal(err)
		}
		rest := map[string]any{}
		for _, q := range qd.do("GET", "/v1/stats", nil, 200)["queues"].([]any) {
			if q := q.(map[string]any); q["queue"] == "support" {
				rest = q
			}
		}
		shown := map[string]float64{}
		var diffs []string
		if len(page["support"]) < 10 {
			diffs = append(diffs, fmt.Sprintf("the page shows %d numbers for support", len(page["support"])))
		}
		for field, v := range page["support"] {
			want, ok := lookup(rest, field)
			switch {
			case !ok:
				t.Fatalf("the page shows %s, which GET /v1/stats has not", field)
			case v == nil:
				diffs = append(diffs, field+" shown empty")
			case field == "longest_wait_seconds" && math.Abs(*v-want) <= 1.5, *v == want:
				shown[field] = *v
			default:
				diffs = append(diffs, fmt.Sprintf("%s shown %v, REST %v", field, *v, want))
			}
		}
		if len(diffs) == 0 {
			return shown
		}
		diff = strings.Join(diffs, "; ")
	}
	t.Fatalf("the wallboard never agreed with GET /v1/stats: %s", diff)
	return nil
}

// lookup finds "agents.in_call" in a decoded JSON object.
func lookup(m map[string]any, path string) (float64, bool) {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return 0, false
		}
		v = o[k]
	}
	f, ok := v.(float64)
	return f, ok
}
