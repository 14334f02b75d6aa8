package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// queueRig is the queue-distributor's world: real NATS and Redis, fssim
// as FreeSWITCH node fs1 behind a real esl-gateway, and the test standing
// in for the routing policy: every call the dialplan hands to the
// gateway is answered over callctl and joined to a queue over
// queuectl.enqueue; its outcome hangs the caller up.
type queueRig struct {
	t     *testing.T
	nats  *testinfra.NATS
	redis *testinfra.Redis
	sim   *fssim.Sim
	gw    *gatewayProc
	nc    *nats.Conn
	js    jetstream.JetStream
	queue string

	mu       sync.Mutex
	joined   map[string]time.Time // callers the distributor accepted, when
	outcomes map[string]string    // caller → outcome
	answered []time.Time          // when each "answered" outcome came
	problems []string             // what the driver could not do
	drivers  sync.WaitGroup
}

func newQueueRig(t *testing.T, queue string) *queueRig {
	t.Helper()
	r := &queueRig{t: t, queue: queue, joined: map[string]time.Time{}, outcomes: map[string]string{}}
	r.nats = testinfra.NewNATS(t)
	r.redis = testinfra.NewRedis(t)
	r.sim = fssim.New(fssim.Options{Hostname: "fs1"})
	t.Cleanup(func() { r.sim.Close() })
	ln, err := r.sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.gw = startGateway(t, r.nats.URL(), "fs1="+ln.Addr().String()+":ClueCon")
	r.sim.SetDialplan([]fssim.Route{fssim.SocketRoute(`^8084$`, r.gw.socket, false)})
	if r.nc, err = nats.Connect(r.nats.URL(), nats.MaxReconnects(-1)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.nc.Close)
	r.js, _ = jetstream.New(r.nc)
	if _, err := r.nc.Subscribe("calls.*.started", r.onStarted); err != nil {
		t.Fatal(err)
	}
	if _, err := r.nc.Subscribe("queuectl.outcome.*", r.onOutcome); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Drivers still enqueueing when the test ends give up with it.
		done := make(chan struct{})
		go func() { r.drivers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
	})
	return r
}

func (r *queueRig) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// onStarted answers a caller and joins it to the queue, as a policy's
// queue.enqueue would: a request that gets no answer (the distributor
// serving it died) or "unavailable" is asked again — joining twice is
// harmless.
func (r *queueRig) onStarted(m *nats.Msg) {
	env, err := events.Parse(m.Data)
	if err != nil {
		return
	}
	call := env.CallID
	r.drivers.Add(1)
	go func() {
		defer r.drivers.Done()
		if _, err := r.nc.Request("callctl."+call, []byte(`{"op":"execute","app":"answer"}`), 5*time.Second); err != nil {
			r.problem("answer %s: %v", call, err)
			return
		}
		req, _ := json.Marshal(map[string]any{"call_id": call, "queue": r.queue, "node": "fs1", "caller_id_number": "+441234"})
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			msg, err := r.nc.Request("queuectl.enqueue", req, 3*time.Second)
			if err != nil {
				continue
			}
			var rep struct {
				State   string `json:"state"`
				Outcome *struct {
					Outcome string `json:"outcome"`
				} `json:"outcome"`
				Error *struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(msg.Data, &rep); err != nil {
				r.problem("enqueue %s: %v: %s", call, err, msg.Data)
				return
			}
			if rep.Error != nil {
				if rep.Error.Code == "unavailable" {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				r.problem("enqueue %s refused: %s %s", call, rep.Error.Code, rep.Error.Message)
				return
			}
			r.mu.Lock()
			if _, ok := r.joined[call]; !ok {
				r.joined[call] = time.Now()
			}
			r.mu.Unlock()
			if rep.Outcome != nil {
				r.record(call, rep.Outcome.Outcome)
			}
			return
		}
		r.problem("enqueue %s: no answer for 30 s", call)
	}()
}

func (r *queueRig) onOutcome(m *nats.Msg) {
	var o struct {
		Outcome string `json:"outcome"`
	}
	if json.Unmarshal(m.Data, &o) != nil {
		return
	}
	r.record(strings.TrimPrefix(m.Subject, "queuectl.outcome."), o.Outcome)
}

// record keeps a caller's outcome and hangs the caller up, as the policy
// would once queue.enqueue returned.
func (r *queueRig) record(call, outcome string) {
	r.mu.Lock()
	if prev, ok := r.outcomes[call]; ok && prev != outcome {
		r.problems = append(r.problems, fmt.Sprintf("caller %s: outcome %s after %s", call, outcome, prev))
	}
	if _, ok := r.outcomes[call]; !ok && outcome == "answered" {
		r.answered = append(r.answered, time.Now())
	}
	r.outcomes[call] = outcome
	r.mu.Unlock()
	if c := r.sim.Channel(call); c != nil {
		c.Hangup("NORMAL_CLEARING")
	}
}

// setup creates the queue and n logged-in agents (a01…) whose phones
// answer after ring and hang up after talk.
func (r *queueRig) setup(qd *qdProc, n int, ring, talk time.Duration) []string {
	r.t.Helper()
	qd.do("PUT", "/v1/queues/"+r.queue, map[string]any{"strategy": "longest-idle-agent", "wrap_up_seconds": 0}, 201)
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("a%02d", i)
		ids = append(ids, id)
		r.sim.SetEndpoint("user/"+id, fssim.Endpoint{AnswerAfter: ring, HangupAfter: talk})
		qd.do("PUT", "/v1/agents/"+id, map[string]any{"contact": "user/" + id, "ring_timeout_seconds": 15}, 201)
		qd.do("PUT", "/v1/queues/"+r.queue+"/tiers/"+id, map[string]any{"level": 1, "position": i}, 200)
		qd.do("POST", "/v1/agents/"+id+"/login", nil, 200)
	}
	return ids
}

// place starts callers every gap until stop is closed; it returns how
// many it placed once it stopped.
func (r *queueRig) place(ctx context.Context, gap time.Duration, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		n := 0
		defer func() { out <- n }()
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := r.sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: fmt.Sprintf("+4420%06d", n)}); err != nil {
				r.problem("place call %d: %v", n, err)
				return
			}
			n++
		}
	}()
	return out
}

// accounted checks that every caller the distributor accepted is
// somewhere: a member of the queue (waiting or being rung), in a call
// with an agent, or told its outcome. It reads in the order callers move
// (members, then agents, then outcomes) so one moving on meanwhile is
// still seen.
func (r *queueRig) accounted(qd *qdProc) (missing []string) {
	r.t.Helper()
	r.mu.Lock()
	joined := make([]string, 0, len(r.joined))
	for c := range r.joined {
		joined = append(joined, c)
	}
	r.mu.Unlock()
	where := map[string]bool{}
	for _, m := range qd.do("GET", "/v1/queues/"+r.queue+"/members", nil, 200)["members"].([]any) {
		where[m.(map[string]any)["call_id"].(string)] = true
	}
	for _, a := range qd.do("GET", "/v1/agents", nil, 200)["agents"].([]any) {
		if c, _ := a.(map[string]any)["offer_call"].(string); c != "" {
			where[c] = true
		}
	}
	r.mu.Lock()
	for c := range r.outcomes {
		where[c] = true
	}
	r.mu.Unlock()
	for _, c := range joined {
		if !where[c] {
			missing = append(missing, c)
		}
	}
	sort.Strings(missing)
	return missing
}

// agentStates counts agents by status/state and lists the offered ones
// with their offer's owner.
func agentStates(qd *qdProc) (byState map[string]int, offered []string) {
	byState = map[string]int{}
	for _, x := range qd.do("GET", "/v1/agents", nil, 200)["agents"].([]any) {
		a := x.(map[string]any)
		byState[fmt.Sprint(a["status"], "/", a["state"])]++
		if a["state"] == "offered" {
			offered = append(offered, fmt.Sprint(a["id"], "@", a["owner"]))
		}
	}
	return byState, offered
}

// settled waits until every accepted caller has its outcome, nobody is
// in the queue and every agent is available and idle.
func (r *queueRig) settled(qd *qdProc, agents int, within time.Duration) {
	r.t.Helper()
	var why string
	eventually(r.t, within, "the dust to settle", func() bool {
		r.mu.Lock()
		var pending []string
		for c := range r.joined {
			if _, ok := r.outcomes[c]; !ok {
				pending = append(pending, c)
			}
		}
		r.mu.Unlock()
		members := qd.do("GET", "/v1/queues/"+r.queue+"/members", nil, 200)["members"].([]any)
		byState, offered := agentStates(qd)
		why = fmt.Sprintf("%d callers without outcome %v, %d members, agents %v, offered %v", len(pending), first(pending, 5), len(members), byState, offered)
		return len(pending) == 0 && len(members) == 0 && byState["available/idle"] == agents
	})
	r.t.Logf("settled: %s", why)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (r *queueRig) counts() (joined, answered int, other map[string]int, problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	other = map[string]int{}
	for _, o := range r.outcomes {
		if o == "answered" {
			answered++
		} else {
			other[o]++
		}
	}
	return len(r.joined), answered, other, append([]string(nil), r.problems...)
}

func (r *queueRig) answeredSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.answered {
		if at.After(t) {
			n++
		}
	}
	return n
}

// offerWatch follows agent.state.changed(offered) on the wire and counts
// offers by the instance that owns them.
type offerWatch struct {
	mu sync.Mutex
	n  map[string]int
}

func watchOffers(t *testing.T, nc *nats.Conn) *offerWatch {
	w := &offerWatch{n: map[string]int{}}
	sub, err := nc.Subscribe("agents.*.state.changed", func(m *nats.Msg) {
		env, err := events.Parse(m.Data)
		if err != nil {
			return
		}
		var d struct{ State, Owner string }
		if json.Unmarshal(env.Data, &d) == nil && d.State == "offered" {
			w.mu.Lock()
			w.n[d.Owner]++
			w.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return w
}

func (w *offerWatch) count(owner string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[owner]
}

// kill -9 of a queue-distributor in the middle of a load test, with a
// second one running: the survivor takes over the dead one's offers once
// its heartbeat lapses (its agents' rings are hung up, the agents freed,
// its callers put back to wait), no caller the dead one accepted or was
// offering is lost, and once restarted the instance offers calls again.
// At the end every caller was answered and every agent is idle.
func TestQueueDistributorKilledUnderLoad(t *testing.T) {
	const agents = 15
	r := newQueueRig(t, "sales")
	qa := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-a")
	qb := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-b")
	r.setup(qa, agents, 300*time.Millisecond, 500*time.Millisecond)
	offers := watchOffers(t, r.nc)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	placed := r.place(ctx, 60*time.Millisecond, stop)

	// Kill qd-a while it is ringing agents.
	eventually(t, 15*time.Second, "qd-a to ring agents", func() bool { return offers.count("qd-a") >= 20 })
	eventually(t, 5*time.Second, "an agent rung by qd-a", func() bool {
		_, offered := agentStates(qb)
		return strings.Contains(strings.Join(offered, " "), "@qd-a")
	})
	qa.Kill()
	killed := time.Now()
	_, left := agentStates(qb)
	t.Logf("killed qd-a; agents offered at that moment: %v", left)
	if missing := r.accounted(qb); len(missing) > 0 {
		t.Fatalf("right after the kill, callers nowhere: %v", missing)
	}

	// qd-b takes the dead instance's offers over after its heartbeat
	// lapses (6 s) and two recovery passes.
	eventually(t, 15*time.Second, "qd-b to free the agents qd-a left offered", func() bool {
		_, offered := agentStates(qb)
		return !strings.Contains(strings.Join(offered, " "), "@qd-a")
	})
	t.Logf("qd-a's offers taken over after %v", time.Since(killed).Round(100*time.Millisecond))
	if missing := r.accounted(qb); len(missing) > 0 {
		t.Fatalf("after the take-over, callers nowhere: %v", missing)
	}

	qa.Start()
	restarted := time.Now()
	before := offers.count("qd-a")
	eventually(t, 15*time.Second, "the restarted qd-a to offer calls", func() bool { return offers.count("qd-a") > before+5 })
	eventually(t, 15*time.Second, "calls answered after the restart", func() bool { return r.answeredSince(restarted) >= 20 })
	close(stop)
	n := <-placed
	eventually(t, 30*time.Second, "every caller placed to be joined", func() bool {
		joined, _, _, problems := r.counts()
		return joined == n || len(problems) > 0
	})
	if missing := r.accounted(qa); len(missing) > 0 {
		t.Fatalf("after the restart, callers nowhere: %v", missing)
	}

	r.settled(qa, agents, 30*time.Second)
	joined, answered, other, problems := r.counts()
	t.Logf("%d callers placed, %d joined, %d answered, others %v; %d offers by qd-a (%d after its restart), %d by qd-b",
		n, joined, answered, other, offers.count("qd-a"), offers.count("qd-a")-before, offers.count("qd-b"))
	if len(problems) > 0 {
		t.Fatalf("driver problems: %v", first(problems, 10))
	}
	if joined != n || answered != joined {
		t.Fatalf("%d placed, %d joined, %d answered (%v): every caller that joined must be answered", n, joined, answered, other)
	}
	// Nothing rings any more: only callers still hanging up may be left.
	eventually(t, 10*time.Second, "no channel left in FreeSWITCH", func() bool { return len(r.sim.Channels()) == 0 })
}
