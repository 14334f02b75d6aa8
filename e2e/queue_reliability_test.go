package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
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
	joined   map[string]string // callers the distributor accepted → their queue
	outcomes map[string]string // caller → outcome
	answered []time.Time       // when each "answered" outcome came
	problems []string          // what the driver could not do
	drivers  sync.WaitGroup
}

func newQueueRig(t *testing.T, queue string) *queueRig {
	t.Helper()
	r := &queueRig{t: t, queue: queue, joined: map[string]string{}, outcomes: map[string]string{}}
	// Registered first, so run last: the summary ends a failed test's
	// output, after the processes' logs (CI shows the tail).
	t.Cleanup(func() {
		if t.Failed() {
			joined, answered, other, problems := r.counts()
			t.Logf("rig at the end: %d joined, %d answered, others %v, %d without outcome %v, problems %v",
				joined, answered, other, len(r.pending()), first(r.pending(), 5), first(problems, 5))
		}
	})
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
	queue := r.queue
	if c := r.sim.Channel(call); c != nil {
		if q, ok := c.Var("e2e_queue"); ok {
			queue = q
		}
	}
	r.drivers.Add(1)
	go func() {
		defer r.drivers.Done()
		if _, err := r.nc.Request("callctl."+call, []byte(`{"op":"execute","app":"answer"}`), 5*time.Second); err != nil {
			r.problem("answer %s: %v", call, err)
			return
		}
		req, _ := json.Marshal(map[string]any{"call_id": call, "queue": queue, "node": "fs1", "caller_id_number": "+441234"})
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if r.told(call) {
				// The join that got no answer went through and the call
				// already has its outcome: a policy would not ask again
				// (queue.enqueue returned), and asking would queue a
				// caller who has hung up.
				r.mu.Lock()
				r.joined[call] = queue
				r.mu.Unlock()
				return
			}
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
			r.joined[call] = queue
			r.mu.Unlock()
			if rep.Outcome != nil {
				r.record(call, rep.Outcome.Outcome)
			}
			return
		}
		r.problem("enqueue %s: no answer for 30 s", call)
	}()
}

// told reports whether call has its outcome.
func (r *queueRig) told(call string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.outcomes[call]
	return ok
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
// somewhere: a member of a queue (waiting or being rung), in a call
// with an agent, told its outcome or with its outcome kept for
// queuectl.status. It reads in the order callers move
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
	for _, q := range qd.do("GET", "/v1/queues", nil, 200)["queues"].([]any) {
		for _, m := range qd.do("GET", "/v1/queues/"+q.(map[string]any)["name"].(string)+"/members", nil, 200)["members"].([]any) {
			where[m.(map[string]any)["call_id"].(string)] = true
		}
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
		if !where[c] && !r.known(c) {
			missing = append(missing, c)
		}
	}
	sort.Strings(missing)
	return missing
}

// known asks queuectl.status about a call, as a waiting policy does now
// and then: an outcome the distributor stored but has not told yet (the
// instance telling it died; the call event comes back to another one
// within its ack wait) is not lost.
func (r *queueRig) known(call string) bool {
	msg, err := r.nc.Request("queuectl.status", []byte(`{"call_id":"`+call+`"}`), 3*time.Second)
	if err != nil {
		return false
	}
	var rep struct {
		State string          `json:"state"`
		Error json.RawMessage `json:"error"`
	}
	return json.Unmarshal(msg.Data, &rep) == nil && rep.Error == nil && rep.State != ""
}

// agentStates counts agents by status/state and lists the offered ones
// as agent@owner#offer.
func agentStates(qd *qdProc) (byState map[string]int, offered []string) {
	byState = map[string]int{}
	for _, x := range qd.do("GET", "/v1/agents", nil, 200)["agents"].([]any) {
		a := x.(map[string]any)
		byState[fmt.Sprint(a["status"], "/", a["state"])]++
		if a["state"] == "offered" {
			offered = append(offered, fmt.Sprint(a["id"], "@", a["owner"], "#", a["offer_id"]))
		}
	}
	return byState, offered
}

// offeredBy keeps the offers of owner among offered (agentStates').
func offeredBy(offered []string, owner string) []string {
	var out []string
	for _, o := range offered {
		if strings.Contains(o, "@"+owner+"#") {
			out = append(out, o)
		}
	}
	return out
}

// stillOffered is which of the offers once seen are still there.
func stillOffered(qd *qdProc, once []string) []string {
	_, now := agentStates(qd)
	var out []string
	for _, o := range once {
		for _, n := range now {
			if n == o {
				out = append(out, o)
			}
		}
	}
	return out
}

// settled waits until every caller accepted in the rig's queue has its
// outcome, nobody is in that queue and its agents are available and idle.
// pending are the callers of the rig's queue without an outcome yet.
func (r *queueRig) pending() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for c, q := range r.joined {
		if _, ok := r.outcomes[c]; !ok && q == r.queue {
			out = append(out, c)
		}
	}
	return out
}

func (r *queueRig) settled(qd *qdProc, agents int, within time.Duration) {
	r.t.Helper()
	var why string
	defer func() {
		if r.t.Failed() {
			r.t.Logf("not settled: %s", why)
			r.logCallEvents(r.pending())
		}
	}()
	eventually(r.t, within, "the dust to settle", func() bool {
		pending := r.pending()
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
// Killed again and restarted at once (its heartbeat never lapses), it
// finds its own orphaned offers and frees them. At the end every caller
// was answered and every agent is idle.
func TestQueueDistributorKilledUnderLoad(t *testing.T) {
	const agents = 15
	const takeOver = `"msg":"taking over an offer left by a stopped instance"`
	began := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }
	r := newQueueRig(t, "sales")
	qa := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-a")
	qb := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-b")
	r.setup(qa, agents, 300*time.Millisecond, 500*time.Millisecond)
	offers := watchOffers(t, r.nc)
	step("ready")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	placed := r.place(ctx, 60*time.Millisecond, stop)

	// Kill qd-a while it is ringing agents.
	killWhileRinging := func() (left []string) {
		t.Helper()
		eventually(t, 10*time.Second, "an agent rung by qd-a", func() bool {
			_, offered := agentStates(qb)
			return len(offeredBy(offered, "qd-a")) > 0
		})
		qa.Kill()
		_, offered := agentStates(qb)
		return offeredBy(offered, "qd-a")
	}
	eventually(t, 15*time.Second, "qd-a to ring agents", func() bool { return offers.count("qd-a") >= 20 })
	left := killWhileRinging()
	killed := time.Now()
	step(fmt.Sprintf("killed qd-a; agents it was offering: %v", left))
	if missing := r.accounted(qb); len(missing) > 0 {
		t.Fatalf("right after the kill, callers nowhere: %v", missing)
	}

	// qd-b takes the dead instance's offers over after its heartbeat
	// lapses (6 s) and two recovery passes.
	eventually(t, 15*time.Second, "qd-b to free the agents qd-a left offered", func() bool { return len(stillOffered(qb, left)) == 0 })
	t.Logf("qd-a's offers taken over after %v", time.Since(killed).Round(100*time.Millisecond))
	if qb.logged(takeOver) < len(left) {
		t.Fatalf("qd-b logged %d take-overs, want at least %d", qb.logged(takeOver), len(left))
	}
	if missing := r.accounted(qb); len(missing) > 0 {
		t.Fatalf("after the take-over, callers nowhere: %v", missing)
	}

	qa.Start()
	restarted := time.Now()
	before := offers.count("qd-a")
	eventually(t, 15*time.Second, "the restarted qd-a to offer calls", func() bool { return offers.count("qd-a") > before+5 })
	eventually(t, 15*time.Second, "calls answered after the restart", func() bool { return r.answeredSince(restarted) >= 20 })
	step("calls answered after the restart")

	// kill -9 again and back at once under the same name: its heartbeat
	// holds, so qd-b leaves its offers alone; it finds them itself.
	tookB, tookA := qb.logged(takeOver), qa.logged(takeOver)
	left = killWhileRinging()
	qa.Start()
	restarted = time.Now()
	t.Logf("killed qd-a and started it at once; agents it was offering: %v", left)
	eventually(t, 15*time.Second, "the restarted qd-a to free the agents it left offered", func() bool { return len(stillOffered(qb, left)) == 0 })
	t.Logf("freed by the restarted qd-a after %v", time.Since(restarted).Round(100*time.Millisecond))
	if got := qb.logged(takeOver); got != tookB {
		t.Fatalf("qd-b took over %d offers of a qd-a that was back", got-tookB)
	}
	if got := qa.logged(takeOver) - tookA; got < len(left) {
		t.Fatalf("the restarted qd-a took over %d of its %d orphaned offers", got, len(left))
	}
	if missing := r.accounted(qa); len(missing) > 0 {
		t.Fatalf("after the second restart, callers nowhere: %v", missing)
	}
	eventually(t, 15*time.Second, "calls answered after the second restart", func() bool { return r.answeredSince(restarted) >= 10 })
	step("calls answered after the second restart")

	close(stop)
	n := <-placed
	eventually(t, 30*time.Second, "every caller placed to be joined", func() bool {
		joined, _, _, problems := r.counts()
		return joined == n || len(problems) > 0
	})
	step("every caller joined")
	// A call event the killed instance had taken reaches qd-b within the
	// CALLS consumer's ack wait (5 s): no agent stays in a call over.
	r.settled(qa, agents, 15*time.Second)
	step("settled")
	joined, answered, other, problems := r.counts()
	t.Logf("%d callers placed, %d joined, %d answered, others %v; %d offers by qd-a, %d by qd-b",
		n, joined, answered, other, offers.count("qd-a"), offers.count("qd-b"))
	if len(problems) > 0 {
		t.Fatalf("driver problems: %v", first(problems, 10))
	}
	if joined != n || answered != joined {
		t.Fatalf("%d placed, %d joined, %d answered (%v): every caller that joined must be answered", n, joined, answered, other)
	}
	// Nothing rings any more: only callers still hanging up may be left.
	eventually(t, 10*time.Second, "no channel left in FreeSWITCH", func() bool { return len(r.sim.Channels()) == 0 })
	step("done")
}

// get reads the admin REST without failing the test: status and body.
func (p *qdProc) get(path string) (int, map[string]any) {
	req, _ := http.NewRequest("GET", "http://"+p.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// ready reports whether /readyz says 200 (offers not paused).
func (p *qdProc) ready() bool {
	resp, err := http.Get("http://" + p.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// logged counts the log lines of p that contain s.
func (p *qdProc) logged(s string) int {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return strings.Count(p.log.b.String(), s)
}

// stableState is what the admin REST shows that no call changes: every
// queue's configuration and tiers, every agent's configuration and
// status, and the members of the queues named (callers who wait there
// untouched). Versions and counters are left out. "" when the REST
// cannot answer.
func stableState(qd *qdProc, membersOf ...string) string {
	var b strings.Builder
	code, qs := qd.get("/v1/queues")
	if code != 200 {
		return ""
	}
	for _, x := range qs["queues"].([]any) {
		q := x.(map[string]any)
		delete(q, "version")
		delete(q, "joined_total")
		j, _ := json.Marshal(q)
		fmt.Fprintf(&b, "queue %s\n", j)
		code, ts := qd.get("/v1/queues/" + q["name"].(string) + "/tiers")
		if code != 200 {
			return ""
		}
		j, _ = json.Marshal(ts)
		fmt.Fprintf(&b, "  tiers %s\n", j)
	}
	code, as := qd.get("/v1/agents")
	if code != 200 {
		return ""
	}
	for _, x := range as["agents"].([]any) {
		a := x.(map[string]any)
		for _, k := range []string{"state", "version", "calls_answered", "talk_ms", "no_answer_count", "idle_since_ms", "ready_at_ms",
			"offer_call", "offer_id", "offer_queue", "owner", "leg", "offered_at_ms", "answered_at_ms", "node", "wait_ms"} {
			delete(a, k)
		}
		j, _ := json.Marshal(a)
		fmt.Fprintf(&b, "agent %s\n", j)
	}
	for _, q := range membersOf {
		code, ms := qd.get("/v1/queues/" + q + "/members")
		if code != 200 {
			return ""
		}
		var lines []string
		for _, x := range ms["members"].([]any) {
			m := x.(map[string]any)
			lines = append(lines, fmt.Sprintf("member %s %s %s joined %v priority %v", q, m["call_id"], m["state"], m["joined_ms"], m["priority"]))
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// qdCommand runs a queue-distributor subcommand (rebuild, checksum)
// against the rig and returns the checksum it printed.
func (r *queueRig) qdCommand(args ...string) string {
	r.t.Helper()
	m := regexp.MustCompile(`checksum ([0-9a-f]{64})`).FindStringSubmatch(r.qdOutput(args...))
	if m == nil {
		r.t.Fatalf("queue-distributor %v printed no checksum", args)
	}
	return m[1]
}

func (r *queueRig) qdOutput(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(filepath.Join(binaries, "queue-distributor"), args...)
	cmd.Env = append(cmd.Environ(), "SWITCHYARD_NATS_URL="+r.nats.URL(), "SWITCHYARD_REDIS_URL="+r.redis.URL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("queue-distributor %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// caughtUp waits until the live projection holds every event of QUEUES
// and AGENTS (`queue-distributor checksum` prints its position).
func (r *queueRig) caughtUp() {
	r.t.Helper()
	re := regexp.MustCompile(`QUEUES #(\d+), AGENTS #(\d+)`)
	eventually(r.t, 10*time.Second, "the projection to hold every event", func() bool {
		m := re.FindStringSubmatch(r.qdOutput("checksum"))
		return m != nil && m[1] == fmt.Sprint(lastSeq(r.t, r.js, "QUEUES")) && m[2] == fmt.Sprint(lastSeq(r.t, r.js, "AGENTS"))
	})
}

func lastSeq(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// Redis flushed in the middle of a load test under two distributors:
// they notice the projection is gone (the mark a complete build leaves in
// it went with it), pause their offers, one of them rebuilds it from
// QUEUES and AGENTS under the rebuild lock while the other waits, and
// both follow the streams again. The REST shows the same queues,
// tiers, agents and waiting callers as before, calls go on being
// answered, and the projection is the one a fresh replay of the log
// gives.
func TestQueueDistributorRebuildsAfterRedisFlush(t *testing.T) {
	const agents = 10
	r := newQueueRig(t, "sales")
	qa := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-a")
	qb := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-b")
	r.setup(qa, agents, 200*time.Millisecond, 400*time.Millisecond)
	// A second queue whose callers wait: its agents are on a break or
	// logged out. Its shape is what must come back.
	qa.do("PUT", "/v1/queues/backlog", map[string]any{"strategy": "top-down", "max_wait_seconds": 600, "exit_keys": "9",
		"wrap_up_seconds": 3, "tier_rules_apply": true, "tier_rule_wait_seconds": 30}, 201)
	qa.do("PUT", "/v1/agents/b01", map[string]any{"contact": "user/b01", "skills": map[string]int{"french": 3}, "max_no_answer": 2}, 201)
	qa.do("PUT", "/v1/agents/b02", map[string]any{"contact": "user/b02", "reject_delay_seconds": 7}, 201)
	qa.do("PUT", "/v1/queues/backlog/tiers/b01", map[string]any{"level": 1, "position": 1}, 200)
	qa.do("PUT", "/v1/queues/backlog/tiers/b02", map[string]any{"level": 2, "position": 4}, 200)
	qa.do("PUT", "/v1/queues/sales/tiers/b02", map[string]any{"level": 3, "position": 9}, 200)
	qa.do("POST", "/v1/agents/b01/login", nil, 200)
	qa.do("PUT", "/v1/agents/b01/status", map[string]any{"status": "on_break"}, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 4; i++ {
		if _, err := r.sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", Variables: map[string]string{"e2e_queue": "backlog"}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "four callers waiting in backlog", func() bool {
		return len(qa.do("GET", "/v1/queues/backlog/members", nil, 200)["members"].([]any)) == 4
	})

	stop := make(chan struct{})
	placed := r.place(ctx, 70*time.Millisecond, stop)
	eventually(t, 15*time.Second, "calls answered", func() bool { _, answered, _, _ := r.counts(); return answered >= 15 })
	before := stableState(qa, "backlog")
	if before == "" || strings.Count(before, "member backlog") != 4 {
		t.Fatalf("state before the flush:\n%s", before)
	}

	if err := r.redis.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	flushed := time.Now()
	for _, qd := range []*qdProc{qa, qb} {
		eventually(t, 15*time.Second, qd.instance+" to show the state again", func() bool { return stableState(qd, "backlog") == before })
	}
	t.Logf("state back on both instances %v after the flush", time.Since(flushed).Round(time.Millisecond))
	if n := qa.logged("projection rebuilt from the event log") + qb.logged("projection rebuilt from the event log"); n != 1 {
		t.Fatalf("%d rebuilds, want one (the other instance waits for it)", n)
	}
	if missing := r.accounted(qb); len(missing) > 0 {
		r.logCallEvents(missing)
		t.Fatalf("after the rebuild, callers nowhere: %v", missing)
	}
	eventually(t, 15*time.Second, "calls answered after the flush", func() bool { return r.answeredSince(flushed) >= 15 })
	close(stop)
	n := <-placed
	eventually(t, 30*time.Second, "every caller placed to be joined", func() bool {
		joined, _, _, problems := r.counts()
		return joined == n+4 || len(problems) > 0
	})
	r.settled(qb, agents, 30*time.Second)
	joined, answered, other, problems := r.counts()
	t.Logf("%d callers placed, %d joined, %d answered, others %v", n, joined, answered, other)
	if len(problems) > 0 {
		t.Fatalf("driver problems: %v", first(problems, 10))
	}
	if answered != n {
		t.Fatalf("%d of %d callers answered (%v)", answered, n, other)
	}
	if after := stableState(qa, "backlog"); after != before {
		t.Fatalf("state after the run:\n%s\nbefore the flush:\n%s", after, before)
	}
	// The live projection (rebuilt, then followed) is what a replay of
	// the whole log into an empty one gives.
	live := r.qdCommand("checksum")
	if replayed := r.qdCommand("rebuild", "--redis-prefix", "e2e-verify:"); replayed != live {
		t.Fatalf("live projection %s, replayed %s", live, replayed)
	}

	// Flushed again while nothing happens: no follower meets the loss,
	// the periodic look for the mark does.
	if err := r.redis.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, qd := range []*qdProc{qa, qb} {
		eventually(t, 15*time.Second, qd.instance+" to show the state again after a quiet flush", func() bool { return stableState(qd, "backlog") == before })
	}
	if n := qa.logged("projection rebuilt from the event log") + qb.logged("projection rebuilt from the event log"); n != 2 {
		t.Fatalf("%d rebuilds after two flushes, want two", n)
	}

	// The operator's `queue-distributor rebuild` while both run: they
	// pause for it and follow on from where it leaves the projection.
	rebuilt := r.qdCommand("rebuild")
	for _, qd := range []*qdProc{qa, qb} {
		eventually(t, 10*time.Second, qd.instance+" to follow the rebuilt projection", func() bool {
			return qd.logged(`"by":"queue-distributor rebuild"`) == 1 && qd.logged("the projection was rebuilt meanwhile") >= 1 && qd.ready()
		})
	}
	if after := stableState(qb, "backlog"); after != before {
		t.Fatalf("state after the operator's rebuild:\n%s\nbefore:\n%s", after, before)
	}
	if live := r.qdCommand("checksum"); live != rebuilt {
		t.Fatalf("projection %s right after the operator's rebuild printed %s", live, rebuilt)
	}
	// And calls are still answered.
	was := r.answeredSince(time.Time{})
	stop = make(chan struct{})
	placed = r.place(ctx, 100*time.Millisecond, stop)
	eventually(t, 15*time.Second, "calls answered after the operator's rebuild", func() bool { return r.answeredSince(time.Time{}) >= was+10 })
	close(stop)
	n += <-placed
	r.settled(qa, agents, 30*time.Second)
	if _, got, _, _ := r.counts(); got != n {
		t.Fatalf("%d of %d callers answered", got, n)
	}

	// Redis emptied while no distributor runs: the first to start
	// rebuilds the projection before it serves; the next finds it there.
	qa.Stop()
	qb.Stop()
	if err := r.redis.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rebuilds := qa.logged("projection rebuilt from the event log") + qb.logged("projection rebuilt from the event log")
	qa.Start()
	qb.Start()
	if got := qa.logged("projection rebuilt from the event log") + qb.logged("projection rebuilt from the event log"); got != rebuilds+1 {
		t.Fatalf("%d rebuilds at start, want one", got-rebuilds)
	}
	if after := stableState(qb, "backlog"); after != before {
		t.Fatalf("state after a start on an empty Redis:\n%s\nbefore:\n%s", after, before)
	}
}

func (r *queueRig) logCallEvents(calls []string) {
	want := map[string]bool{}
	for _, c := range calls {
		want[c] = true
	}
	for _, stream := range []string{"QUEUES", "AGENTS", "CALLS"} {
		cons, err := r.js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			r.t.Log(err)
			continue
		}
		for {
			m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			env, err := events.Parse(m.Data())
			if err != nil {
				continue
			}
			md, _ := m.Metadata()
			if want[env.CallID] {
				r.t.Logf("%s #%d %s %s %s", stream, md.Sequence.Stream, env.Time.Format("05.000"), m.Subject(), env.Data)
			}
		}
	}
}

// storedEvent is one event as JetStream holds it.
type storedEvent struct {
	stream, subject string
	seq             uint64
	msgID           string
	env             *events.Envelope
	raw             []byte
}

// state is the value of data field f (agent.state.changed's state).
func (e storedEvent) field(f string) string {
	var d map[string]any
	_ = json.Unmarshal(e.env.Data, &d)
	s, _ := d[f].(string)
	return s
}

func readStream(t *testing.T, js jetstream.JetStream, stream string) []storedEvent {
	t.Helper()
	last := lastSeq(t, js, stream)
	cons, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []storedEvent
	for len(out) == 0 || out[len(out)-1].seq < last {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		md, _ := m.Metadata()
		env, err := events.Parse(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedEvent{stream, m.Subject(), md.Sequence.Stream, m.Headers().Get(nats.MsgIdHdr), env, m.Data()})
	}
	return out
}

// republish stores e again, byte for byte, under msgID; it returns
// whether JetStream took it as a duplicate.
func republish(t *testing.T, js jetstream.JetStream, e storedEvent, msgID string) bool {
	t.Helper()
	msg := &nats.Msg{Subject: e.subject, Data: e.raw, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, msgID)
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatalf("republish %s #%d: %v", e.env.Type, e.seq, err)
	}
	return ack.Duplicate
}

// fullState is stableState plus every agent's state and counters and
// each queue's finished-member counts: all the REST shows but versions
// (an event stored again is the aggregate's last one: its version).
func fullState(qd *qdProc, queues ...string) string {
	var b strings.Builder
	b.WriteString(stableState(qd, queues...))
	_, as := qd.get("/v1/agents")
	for _, x := range as["agents"].([]any) {
		a := x.(map[string]any)
		delete(a, "version")
		j, _ := json.Marshal(a)
		fmt.Fprintf(&b, "agent state %s\n", j)
	}
	for _, q := range queues {
		_, st := qd.get("/v1/queues/" + q + "/stats")
		fmt.Fprintf(&b, "stats %s answered=%v abandoned=%v exited=%v waiting=%v\n", q, st["answered"], st["abandoned"], st["exited"], st["waiting"])
	}
	return b.String()
}

// diffLines shows the lines of a not in b (-) and of b not in a (+).
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	am, bm := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !bm[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !am[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Events stored again on QUEUES and AGENTS, as a publisher retrying or a
// tool replaying would: the same Nats-Msg-Id is dropped by JetStream;
// copies under a new id reach the projection, which must refuse them.
// Neither changes what the REST shows, the aggregates they land on still
// take commands and calls, and the live projection is still what a replay
// of the whole log gives.
func TestQueueDistributorDuplicateAndStaleEvents(t *testing.T) {
	r := newQueueRig(t, "sales")
	qa := startQueueDistributor(t, r.nats.URL(), r.redis.URL(), "qd-a")
	r.setup(qa, 3, 100*time.Millisecond, 200*time.Millisecond)
	// a03 is always busy: every offer to it ends declined.
	r.sim.SetEndpoint("user/a03", fssim.Endpoint{AnswerAfter: 50 * time.Millisecond, Fail: "USER_BUSY"})
	qa.do("PUT", "/v1/agents/a03", map[string]any{"contact": "user/a03", "ring_timeout_seconds": 15, "busy_delay_seconds": 1}, 200)
	qa.do("PUT", "/v1/queues/backlog", map[string]any{"strategy": "top-down", "max_wait_seconds": 600}, 201)
	qa.do("PUT", "/v1/agents/b01", map[string]any{"contact": "user/b01"}, 201)
	qa.do("PUT", "/v1/queues/backlog/tiers/b01", map[string]any{}, 200)
	qa.do("POST", "/v1/agents/b01/login", nil, 200)
	qa.do("PUT", "/v1/agents/b01/status", map[string]any{"status": "on_break"}, 200)
	qa.do("PUT", "/v1/agents/b02", map[string]any{"contact": "user/b02"}, 201)
	qa.do("POST", "/v1/agents/b02/login", nil, 200)
	qa.do("POST", "/v1/agents/b02/logout", nil, 200)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 2; i++ {
		if _, err := r.sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", Variables: map[string]string{"e2e_queue": "backlog"}}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	placed := r.place(ctx, 150*time.Millisecond, stop)
	eventually(t, 15*time.Second, "calls answered", func() bool { _, answered, _, _ := r.counts(); return answered >= 8 })
	close(stop)
	n := <-placed
	r.settled(qa, 3, 15*time.Second)
	r.caughtUp()
	before := fullState(qa, "sales", "backlog")
	if strings.Count(before, "member backlog") != 2 {
		t.Fatalf("state:\n%s", before)
	}
	var log []storedEvent
	for _, stream := range []string{"QUEUES", "AGENTS"} {
		log = append(log, readStream(t, r.js, stream)...)
	}
	t.Logf("%d callers, %d events in the log", n, len(log))
	unchanged := func(what string) {
		t.Helper()
		r.caughtUp()
		if after := fullState(qa, "sales", "backlog"); after != before {
			t.Fatalf("%s changed the state:\n%s", what, diffLines(before, after))
		}
	}

	t.Run("same Nats-Msg-Id", func(t *testing.T) {
		lastQ, lastA := lastSeq(t, r.js, "QUEUES"), lastSeq(t, r.js, "AGENTS")
		for _, e := range log {
			if !republish(t, r.js, e, e.msgID) {
				t.Fatalf("%s #%d stored again under its own Nats-Msg-Id", e.env.Type, e.seq)
			}
		}
		if q, a := lastSeq(t, r.js, "QUEUES"), lastSeq(t, r.js, "AGENTS"); q != lastQ || a != lastA {
			t.Fatalf("streams grew: QUEUES %d→%d, AGENTS %d→%d", lastQ, q, lastA, a)
		}
		unchanged("re-publishing every event")
	})

	t.Run("copies the state refuses", func(t *testing.T) {
		// Copies under new ids of what cannot happen twice: a finished
		// member's end, a caller's offer, an agent's ring ending, an
		// agent answering or wrapping up a call long over, a waiting
		// caller joining again; and the latest configuration of every
		// queue, tier and agent (the same values once more).
		latest := map[string]storedEvent{}
		var refused []storedEvent
		for _, e := range log {
			switch e.env.Type {
			case "queue.member.offered", "queue.member.requeued", "queue.member.answered", "queue.member.abandoned", "queue.member.exited", "agent.offer.declined":
			case "agent.state.changed":
				if st := e.field("state"); st != "in_call" && st != "wrap_up" {
					continue
				}
			case "queue.member.joined":
				if !strings.Contains(before, e.env.CallID) {
					continue // an ended member's join: see the next subtest
				}
			case "queue.created", "queue.updated", "agent.created", "agent.updated":
				latest[e.subject[:strings.LastIndex(e.subject, ".")]] = e
				continue
			case "queue.tier.set", "queue.tier.removed":
				latest[e.subject+"/"+e.field("agent")] = e
				continue
			default:
				continue
			}
			refused = append(refused, e)
		}
		// The configurations first: the copies refused come last, so they
		// are the last events of their aggregates.
		for _, e := range latest {
			republish(t, r.js, e, e.msgID+"-copy")
		}
		for _, e := range refused {
			republish(t, r.js, e, e.msgID+"-copy")
		}
		t.Logf("%d copies of configurations, %d the state refuses", len(latest), len(refused))
		unchanged("copies the state refuses")
		// The agents and queues the copies landed on still take calls and
		// commands (an event that changed nothing is still the aggregate's
		// last: its version).
		answered := r.answeredSince(time.Time{})
		stop := make(chan struct{})
		placed := r.place(ctx, 150*time.Millisecond, stop)
		eventually(t, 15*time.Second, "calls answered after the copies", func() bool { return r.answeredSince(time.Time{}) >= answered+6 })
		close(stop)
		n += <-placed
		r.settled(qa, 3, 15*time.Second)
		if _, got, _, _ := r.counts(); got != n {
			t.Fatalf("%d of %d callers answered", got, n)
		}
		qa.do("PUT", "/v1/queues/sales", map[string]any{"strategy": "longest-idle-agent", "wrap_up_seconds": 0}, 200)
		qa.do("PUT", "/v1/queues/backlog/tiers/b01", map[string]any{"level": 1}, 200)
		for _, a := range []string{"a01", "a02", "a03", "b02"} {
			qa.do("PUT", "/v1/agents/"+a+"/status", map[string]any{"status": "on_break"}, 200)
		}
		qa.do("POST", "/v1/agents/b02/logout", nil, 200)
		for _, a := range []string{"a01", "a02", "a03"} {
			qa.do("POST", "/v1/agents/"+a+"/login", nil, 200)
		}
		r.caughtUp()
		before = fullState(qa, "sales", "backlog")
	})

	t.Run("stale copies", func(t *testing.T) {
		// Copies of old events under new message ids (their event ids
		// unchanged): a finished caller joining,
		// an agent's old status (b01 was available before its break, b02
		// before logging out), an old offer to an agent now idle, an old
		// end of a wrap-up.
		var stale []storedEvent
		seen := map[string]bool{}
		for _, e := range log {
			key := e.env.Type + " " + e.field("state")
			switch {
			case e.env.Type == "queue.member.joined" && !strings.Contains(before, e.env.CallID):
			case e.env.Type == "agent.status.changed" && e.field("status") == "available" && (e.subject == "agents.b01.status.changed" || e.subject == "agents.b02.status.changed"):
				key = e.subject
			case e.env.Type == "agent.state.changed" && (e.field("state") == "offered" || e.field("state") == "idle"):
			default:
				continue
			}
			if !seen[key] {
				seen[key] = true
				stale = append(stale, e)
			}
		}
		for _, e := range stale {
			republish(t, r.js, e, e.msgID+"-stale")
		}
		// A stale copy taken sets calls going (a ghost caller offered, an
		// agent on a break rung) and the log never rests: look after a
		// moment rather than wait for it.
		time.Sleep(2 * time.Second)
		if after := fullState(qa, "sales", "backlog"); after != before {
			t.Fatalf("%d stale copies changed the state:\n%s", len(stale), diffLines(before, after))
		}
	})

	// Whatever was stored, the live projection is the log's.
	live := r.qdCommand("checksum")
	if replayed := r.qdCommand("rebuild", "--redis-prefix", "e2e-verify:"); replayed != live {
		t.Fatalf("live projection %s, replayed %s", live, replayed)
	}
}
