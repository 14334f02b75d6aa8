package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &servers, testinfra.WithRedis)) }

// fixture is a projection under a fresh prefix, fed events by hand with
// the sequences a stream would give them.
type fixture struct {
	t     *testing.T
	s     *Store
	seq   map[string]uint64
	clock time.Time
	last  Event // the last event ev applied
}

var prefixN int
var prefixMu sync.Mutex

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, Limits{}) }

func newFixtureWith(t *testing.T, lim Limits) *fixture {
	prefixMu.Lock()
	prefixN++
	p := fmt.Sprintf("t%d:", prefixN)
	prefixMu.Unlock()
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return &fixture{t: t, s: New(rdb, p, lim), seq: map[string]uint64{}, clock: time.UnixMilli(1_800_000_000_000)}
}

func (f *fixture) tick(d time.Duration) time.Time { f.clock = f.clock.Add(d); return f.clock }

func (f *fixture) ev(typ, id string, data any) ApplyResult {
	f.t.Helper()
	st := domain.Stream(typ)
	f.seq[st]++
	raw, _ := json.Marshal(data)
	f.last = Event{Stream: st, Seq: f.seq[st], Type: typ, ID: id, Data: raw, At: f.clock, EventID: fmt.Sprintf("%s-%d", st, f.seq[st])}
	r, err := f.s.Apply(context.Background(), f.last, true)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// again stores ev once more under the next sequence of its stream, with
// its own event id: a copy re-published under a new message id.
func (f *fixture) again(ev Event) ApplyResult {
	f.t.Helper()
	f.seq[ev.Stream]++
	ev.Seq = f.seq[ev.Stream]
	r, err := f.s.Apply(context.Background(), ev, true)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) queue(q domain.Queue) {
	f.t.Helper()
	if err := q.Validate(); err != nil {
		f.t.Fatal(err)
	}
	f.ev(domain.QueueCreated, q.Name, domain.QueueData{Queue: q})
}

func (f *fixture) agent(id, queue string, level, pos int, skills map[string]int) {
	f.t.Helper()
	a := domain.Agent{ID: id, Contact: "user/" + id, Skills: skills, MaxNoAnswer: 2}
	if err := a.Validate(); err != nil {
		f.t.Fatal(err)
	}
	f.ev(domain.AgentCreated, id, domain.AgentData{Agent: a})
	f.ev(domain.TierSet, queue, domain.TierData{Agent: id, Level: level, Position: pos})
}

func (f *fixture) available(id string) ApplyResult {
	return f.ev(domain.AgentStatusChanged, id, domain.StatusData{Status: domain.StatusAvailable, At: f.clock.UnixMilli()})
}

func (f *fixture) join(q, call string, prio int, skills map[string]int) ApplyResult {
	return f.ev(domain.MemberJoined, q, domain.MemberData{Member: domain.Member{CallID: call, Queue: q, Node: "fs1", Priority: prio, Skills: skills, JoinedAt: f.clock.UnixMilli()}})
}

// serve runs one offer through to its end as the service would: offered,
// answered, talk, wrap-up, idle.
func (f *fixture) serve(q, call string, talk time.Duration) string {
	f.t.Helper()
	if _, err := f.s.Member(context.Background(), call); err != nil {
		f.join(q, call, 0, nil)
	}
	o, err := f.s.Decide(context.Background(), q, "test", "offer-"+call, "", f.clock)
	if err != nil || o == nil {
		f.t.Fatalf("decide for %s: %v %v", call, o, err)
	}
	a := o.Agents[0].Agent.ID
	f.ev(domain.AgentStateChanged, a, domain.StateData{State: domain.StateOffered, CallID: call, Queue: q, OfferID: o.ID, Leg: "leg-" + call, At: f.clock.UnixMilli()})
	f.ev(domain.MemberOffered, q, domain.OfferData{CallID: call, OfferID: o.ID, Agents: []string{a}, At: f.clock.UnixMilli()})
	f.ev(domain.AgentStateChanged, a, domain.StateData{State: domain.StateInCall, CallID: call, OfferID: o.ID, Leg: "leg-" + call, At: f.clock.UnixMilli()})
	f.ev(domain.MemberAnswered, q, domain.MemberEndData{CallID: call, OfferID: o.ID, Agent: a, At: f.clock.UnixMilli()})
	f.tick(talk)
	f.ev(domain.AgentStateChanged, a, domain.StateData{State: domain.StateWrapUp, CallID: call, TalkMS: talk.Milliseconds(), ReadyAt: f.clock.UnixMilli(), At: f.clock.UnixMilli()})
	f.ev(domain.AgentStateChanged, a, domain.StateData{State: domain.StateIdle, At: f.clock.UnixMilli()})
	return a
}

func (f *fixture) decide(q string) []string {
	f.t.Helper()
	o, err := f.s.Decide(context.Background(), q, "test", fmt.Sprint("o", f.clock.UnixNano()), "", f.clock)
	if err != nil {
		f.t.Fatal(err)
	}
	if o == nil {
		return nil
	}
	var ids []string
	for _, a := range o.Agents {
		ids = append(ids, a.Agent.ID)
	}
	return ids
}

func TestStrategies(t *testing.T) {
	type agent struct {
		id         string
		level, pos int
	}
	four := []agent{{"a1", 1, 4}, {"a2", 1, 2}, {"a3", 2, 1}, {"a4", 1, 3}}
	cases := []struct {
		strategy domain.Strategy
		agents   []agent
		before   func(f *fixture) // history that orders them
		want     []string         // agents offered to the next member, in order
	}{
		{strategy: domain.TopDown, agents: four, want: []string{"a2"}},
		{strategy: domain.Sequential, agents: four, want: []string{"a2"}},
		{strategy: domain.RingAll, agents: four, want: []string{"a2", "a4", "a1", "a3"}},
		{strategy: domain.RingProgressively, agents: four, want: []string{"a2"}},
		{strategy: domain.LongestIdle, agents: four, before: func(f *fixture) {
			f.tick(time.Minute)
			f.serve("q", "c0", time.Second) // a4 became available first (see order below) and is now the most recently idle
		}, want: []string{"a1"}},
		{strategy: domain.LeastTalkTime, agents: four, before: func(f *fixture) {
			f.serve("q", "c0", 5*time.Minute) // a2 (first by position) talks long
			f.serve("q", "c1", time.Minute)   // a4
		}, want: []string{"a1"}},
		{strategy: domain.FewestCalls, agents: four, before: func(f *fixture) {
			f.serve("q", "c0", time.Second) // a2
			f.serve("q", "c1", time.Second) // a4
		}, want: []string{"a1"}},
		{strategy: domain.RoundRobin, agents: four, before: func(f *fixture) {
			f.serve("q", "c0", time.Second) // a2 (pos 2)
		}, want: []string{"a4"}},
	}
	for _, c := range cases {
		t.Run(string(c.strategy), func(t *testing.T) {
			f := newFixture(t)
			f.queue(domain.Queue{Name: "q", Strategy: c.strategy})
			for _, a := range c.agents {
				f.agent(a.id, "q", a.level, a.pos, nil)
			}
			// Available in the order a4, a1, a2, a3: longest idle is a4.
			for _, id := range []string{"a4", "a1", "a2", "a3"} {
				f.tick(time.Second)
				f.available(id)
			}
			if c.before != nil {
				c.before(f)
			}
			f.tick(time.Second)
			f.join("q", "next", 0, nil)
			got := f.decide("q")
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("offered to %v, want %v", got, c.want)
			}
		})
	}
}

func TestFewestCallsAndLeastTalkCountServedCalls(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q", Strategy: domain.FewestCalls})
	f.agent("a1", "q", 1, 1, nil)
	f.agent("a2", "q", 1, 2, nil)
	f.available("a1")
	f.available("a2")
	f.join("q", "c0", 0, nil)
	if got := f.serve("q", "c0", time.Second); got != "a1" {
		t.Fatalf("first call to %s, want a1 (tie broken by position)", got)
	}
	f.join("q", "c1", 0, nil)
	if got := f.decide("q"); fmt.Sprint(got) != "[a2]" {
		t.Fatalf("second call to %v, want a2 (fewer calls)", got)
	}
}

func TestRandomSpreadsAndIsRepeatable(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q", Strategy: domain.Random})
	for i := 0; i < 20; i++ {
		f.agent(fmt.Sprint("a", i), "q", 1, i, nil)
		f.available(fmt.Sprint("a", i))
	}
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		f.tick(time.Second)
		call := fmt.Sprint("c", i)
		f.join("q", call, 0, nil)
		seen[f.serve("q", call, time.Second)] = true
	}
	if len(seen) < 3 {
		t.Fatalf("10 random offers went to only %v", seen)
	}
}

func TestTierRulesAndSkillEscalation(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q", Strategy: domain.TopDown, TierRulesApply: true, TierRuleWaitSeconds: 30,
		SkillEscalation: []domain.Escalation{{AfterSeconds: 60, RelaxLevels: 3}, {AfterSeconds: 120, DropSkills: true}}})
	f.agent("l1", "q", 1, 1, map[string]int{"billing": 2})
	f.agent("l2", "q", 2, 1, map[string]int{"billing": 9})
	f.agent("l3", "q", 3, 1, nil)
	for _, a := range []string{"l1", "l2", "l3"} {
		f.available(a)
	}
	f.join("q", "m", 0, map[string]int{"billing": 5})
	// l1 is logged in, so tier-rule-no-agent-no-wait does not skip level 1.
	steps := []struct {
		after time.Duration
		want  string
	}{
		{0, "[]"},                  // level 1 lacks the skill; level 2 not reached
		{31 * time.Second, "[l2]"}, // level 2 reached (tier wait)
	}
	for _, s := range steps {
		f.tick(s.after)
		if got := fmt.Sprint(f.decide("q")); got != s.want {
			t.Fatalf("after %v: offered to %s, want %s", s.after, got, s.want)
		}
	}
	// l2 is now offered; another member needing billing 5 waits, then the
	// escalation relaxes it to 2 (l1 qualifies).
	f.join("q", "m2", 0, map[string]int{"billing": 5})
	if got := fmt.Sprint(f.decide("q")); got != "[]" {
		t.Fatalf("fresh member offered to %s", got)
	}
	f.tick(61 * time.Second)
	if got := fmt.Sprint(f.decide("q")); got != "[l1]" {
		t.Fatalf("after the relax step offered to %s, want l1", got)
	}
	// Dropping skills: l3 has none.
	f.join("q", "m3", 0, map[string]int{"billing": 50})
	f.tick(121 * time.Second)
	if got := fmt.Sprint(f.decide("q")); got != "[l3]" {
		t.Fatalf("after drop_skills offered to %s, want l3", got)
	}
}

func TestMemberPriority(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q"})
	f.join("q", "early", 0, nil)
	f.tick(time.Second)
	f.join("q", "vip", 10, nil)
	f.agent("a", "q", 1, 1, nil)
	f.available("a")
	o, err := f.s.Decide(context.Background(), "q", "t", "o1", "", f.clock)
	if err != nil || o == nil || o.Member.CallID != "vip" {
		t.Fatalf("offer %+v err %v: want the priority member", o, err)
	}
}

func TestApplyOnceAndGuards(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	// The same event again (a redelivery) is a duplicate.
	raw, _ := json.Marshal(domain.StatusData{Status: domain.StatusAvailable})
	ev := Event{Stream: "AGENTS", Seq: f.seq["AGENTS"], Type: domain.AgentStatusChanged, ID: "a", Data: raw, At: f.clock}
	if r, _ := f.s.Apply(ctx, ev, false); r.Status != Dup {
		t.Fatalf("redelivery: %+v", r)
	}
	// Strict mode refuses to skip ahead; the consumer may.
	ev.Seq += 2
	if r, _ := f.s.Apply(ctx, ev, true); r.Status != Gap {
		t.Fatalf("gap in strict mode: %+v", r)
	}
	// An out-of-order state change is recorded but changes nothing.
	if r := f.ev(domain.AgentStateChanged, "a", domain.StateData{State: domain.StateInCall, CallID: "x", OfferID: "nope"}); r.Status != Ignored {
		t.Fatalf("in_call without an offer: %+v", r)
	}
	av, _ := f.s.Agent(ctx, "a")
	if av.State != domain.StateIdle {
		t.Fatalf("state %s", av.State)
	}
	if r := f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "ghost"}); r.Status != Ignored {
		t.Fatalf("answer for an unknown member: %+v", r)
	}
}

// TestCopiesUnderNewSequencesAreRefused: an event stored again under a
// new message id (so under a new sequence) finds a state that would take
// it — a finished caller's join, an agent's old status, an old offer to
// an agent now idle — and is refused by its event id; the aggregate's
// version still moves to the copy's sequence (it is the log's last).
func TestCopiesUnderNewSequencesAreRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.available("a")
	available := f.last
	f.join("q", "c1", 0, nil)
	joined := f.last
	f.serve("q", "c1", time.Second)
	f.ev(domain.AgentStatusChanged, "a", domain.StatusData{Status: domain.StatusOnBreak, At: f.clock.UnixMilli()})

	if r := f.again(joined); r.Status != Ignored {
		t.Fatalf("a finished caller's join again: %+v", r)
	}
	if ms, _ := f.s.Members(ctx, "q"); len(ms) != 0 {
		t.Fatalf("the copy brought back %+v", ms)
	}
	if r := f.again(available); r.Status != Ignored {
		t.Fatalf("an old status again: %+v", r)
	}
	av, _ := f.s.Agent(ctx, "a")
	if av.Status != domain.StatusOnBreak {
		t.Fatalf("agent %s after an old status copy", av.Status)
	}
	if av.Version != f.seq["AGENTS"] {
		t.Fatalf("agent version %d, the log's last is %d", av.Version, f.seq["AGENTS"])
	}
	// A new event with the same content but its own id is applied.
	if r := f.available("a"); r.Status != Applied {
		t.Fatalf("a new status: %+v", r)
	}
}

// TestEventIDWindowIsBounded: the ids of the last IDWindow sequences of a
// stream are kept, older ones forgotten (Redis memory stays bounded); a
// copy of an event older than the window is applied by the state it finds.
func TestEventIDWindowIsBounded(t *testing.T) {
	f := newFixtureWith(t, Limits{IDWindow: 300})
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.available("a")
	old := f.last
	for i := range 1000 {
		st := domain.StatusOnBreak
		if i%2 == 1 {
			st = domain.StatusAvailable
		}
		f.ev(domain.AgentStatusChanged, "a", domain.StatusData{Status: st, At: f.clock.UnixMilli()})
	}
	n, err := f.s.Client().ZCard(ctx, f.s.key("ids", "AGENTS")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 300 || n > 300+256 {
		t.Fatalf("%d ids remembered for a window of 300 sequences", n)
	}
	recent := f.last
	if r := f.again(recent); r.Status != Ignored {
		t.Fatalf("a copy within the window: %+v", r)
	}
	f.ev(domain.AgentStatusChanged, "a", domain.StatusData{Status: domain.StatusOnBreak, At: f.clock.UnixMilli()})
	if r := f.again(old); r.Status != Applied {
		t.Fatalf("a copy from before the window: %+v (the window is the documented bound)", r)
	}
}

func TestNoAgentOfferedTwiceUnderConcurrentDeciders(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q", Strategy: domain.LongestIdle})
	const agents, members, deciders = 40, 120, 8
	for i := 0; i < agents; i++ {
		id := fmt.Sprint("a", i)
		f.agent(id, "q", 1, i, nil)
		f.available(id)
	}
	for i := 0; i < members; i++ {
		f.join("q", fmt.Sprint("m", i), 0, nil)
	}
	var mu sync.Mutex
	byAgent, byMember := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	for d := 0; d < deciders; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()}) // its own connection, as another instance
			defer rdb.Close()
			s := New(rdb, f.s.prefix, Limits{})
			for i := 0; ; i++ {
				o, err := s.Decide(ctx, "q", fmt.Sprint("d", d), fmt.Sprintf("d%d-%d", d, i), "", f.clock)
				if err != nil {
					t.Error(err)
					return
				}
				if o == nil {
					return
				}
				mu.Lock()
				byMember[o.Member.CallID]++
				for _, a := range o.Agents {
					byAgent[a.Agent.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(byAgent) != agents || len(byMember) != agents {
		t.Fatalf("%d agents offered to %d members; want every one of %d agents once", len(byAgent), len(byMember), agents)
	}
	for a, n := range byAgent {
		if n != 1 {
			t.Errorf("agent %s offered %d calls", a, n)
		}
	}
	for m, n := range byMember {
		if n != 1 {
			t.Errorf("member %s offered %d times", m, n)
		}
	}
}

func TestReleaseAndDeclineGoBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.available("a")
	f.join("q", "m", 0, nil)
	o, _ := f.s.Decide(ctx, "q", "t", "o1", "", f.clock)
	if o == nil {
		t.Fatal("no offer")
	}
	offered := func() string {
		as, err := f.s.Agents(ctx, domain.StateOffered)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		return fmt.Sprint(ids)
	}
	if got := offered(); got != "[a]" {
		t.Fatalf("offered agents after the reservation: %s", got)
	}
	if err := f.s.Release(ctx, "q", "m", "o1", true, []string{"a"}, f.clock); err != nil {
		t.Fatal(err)
	}
	if got := offered(); got != "[]" {
		t.Fatalf("offered agents after the release: %s", got)
	}
	if got := f.decide("q"); fmt.Sprint(got) != "[a]" {
		t.Fatalf("after release offered to %v", got)
	}
	// A stored offer that is declined twice (no answer, max 2) puts the
	// agent on break, with its delay first.
	m, _ := f.s.Member(ctx, "m")
	offer := m.OfferID
	for i := 0; i < 2; i++ {
		f.ev(domain.AgentStateChanged, "a", domain.StateData{State: domain.StateOffered, CallID: "m", Queue: "q", OfferID: offer, Leg: "l", At: f.clock.UnixMilli()})
		f.ev(domain.MemberOffered, "q", domain.OfferData{CallID: "m", OfferID: offer, Agents: []string{"a"}})
		r := f.ev(domain.AgentOfferDeclined, "a", domain.DeclineData{CallID: "m", OfferID: offer, Reason: "no_answer", NoAnswer: true, ReadyAt: f.clock.Add(5 * time.Second).UnixMilli()})
		f.ev(domain.MemberRequeued, "q", domain.MemberEndData{CallID: "m", OfferID: offer})
		if i == 1 && r.Detail != "max_no_answer" {
			t.Fatalf("second no-answer: %+v", r)
		}
		if i == 0 {
			if got := f.decide("q"); got != nil {
				t.Fatalf("offered during the no-answer delay: %v", got)
			}
			f.tick(6 * time.Second)
			if qs, _, _ := f.s.Wake(ctx, f.clock); fmt.Sprint(qs) != "[q]" {
				t.Fatalf("wake returned %v", qs)
			}
			o, _ := f.s.Decide(ctx, "q", "t", "o2", "", f.clock)
			if o == nil {
				t.Fatal("not offered after the delay")
			}
			offer = o.ID
		}
	}
	if got := offered(); got != "[]" {
		t.Fatalf("offered agents after the declines: %s", got)
	}
	av, _ := f.s.Agent(ctx, "a")
	if av.Status != domain.StatusOnBreak || av.NoAnswer != 2 {
		t.Fatalf("agent %s with %d no-answers, want on_break after 2", av.Status, av.NoAnswer)
	}
	if mv, _ := f.s.Member(ctx, "m"); mv.State != "waiting" || mv.Attempts != 2 {
		t.Fatalf("member %+v", mv)
	}
}

func TestStats(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q", ServiceLevelSeconds: 20})
	f.agent("a", "q", 1, 1, nil)
	f.agent("b", "q", 1, 2, nil)
	f.available("a")
	f.join("q", "fast", 0, nil)
	f.tick(10 * time.Second)
	f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "fast", WaitMS: 10_000, At: f.clock.UnixMilli()})
	f.join("q", "slow", 0, nil)
	f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "slow", WaitMS: 30_000, At: f.clock.UnixMilli()})
	f.join("q", "gone", 0, nil)
	f.ev(domain.MemberAbandoned, "q", domain.MemberEndData{CallID: "gone", WaitMS: 5_000, At: f.clock.UnixMilli()})
	f.join("q", "waiting", 0, nil)
	f.tick(7 * time.Second)
	st, ok, err := f.s.Stats(ctx, "q", f.clock, 15*time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := QueueStats{Queue: "q", Waiting: 1, LongestWaitSeconds: 7, Answered: 2, Abandoned: 1,
		ServiceLevelPct: 33.33, ASASeconds: 20, AbandonRatePct: 33.33,
		Agents: map[string]int{"logged_out": 1, "available": 1, "on_break": 0, "idle": 1, "offered": 0, "in_call": 0, "wrap_up": 0}}
	gj, _ := json.Marshal(st)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("stats\n got %s\nwant %s", gj, wj)
	}
	if _, ok, _ := f.s.Stats(ctx, "nope", f.clock, time.Minute); ok {
		t.Fatal("stats of a missing queue")
	}
}

// ApplyAndDecide is Apply then Decide in one call: fed the same events,
// a projection that decides inline makes the same offers, to the same
// agents, and ends in the same state as one applying and deciding apart.
func TestApplyAndDecideIsApplyThenDecide(t *testing.T) {
	for _, strategy := range []domain.Strategy{domain.LongestIdle, domain.RingAll} {
		t.Run(string(strategy), func(t *testing.T) {
			apart, inline := newFixture(t), newFixture(t)
			var offersApart, offersInline []string
			// step applies one event to both: apart decides in every queue
			// the event named, inline in the same script.
			step := func(typ, id string, data any) {
				t.Helper()
				r := apart.ev(typ, id, data)
				for _, q := range r.Queues {
					if got := apart.decide(q); got != nil {
						offersApart = append(offersApart, fmt.Sprint(q, got))
						break
					}
				}
				raw, _ := json.Marshal(data)
				st := domain.Stream(typ)
				inline.seq[st]++
				ev := Event{Stream: st, Seq: inline.seq[st], Type: typ, ID: id, Data: raw, At: inline.clock, EventID: fmt.Sprintf("%s-%d", st, inline.seq[st])}
				ri, o, err := inline.s.ApplyAndDecide(context.Background(), ev, "test", fmt.Sprint("o", inline.clock.UnixNano()), inline.clock)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(ri) != fmt.Sprint(r) {
					t.Fatalf("%s %s: applied inline %+v, apart %+v", typ, id, ri, r)
				}
				if o != nil {
					var ids []string
					for _, a := range o.Agents {
						ids = append(ids, a.Agent.ID)
					}
					offersInline = append(offersInline, fmt.Sprint(o.Queue, ids))
				}
			}
			for _, f := range []*fixture{apart, inline} {
				f.queue(domain.Queue{Name: "q", Strategy: strategy})
				for i := range 3 {
					f.agent(fmt.Sprint("a", i), "q", 1, i+1, nil)
				}
			}
			at := func() int64 { return apart.clock.UnixMilli() }
			tick := func() { apart.tick(time.Second); inline.tick(time.Second) }
			step(domain.AgentStatusChanged, "a1", domain.StatusData{Status: domain.StatusAvailable, At: at()}) // nobody waits
			tick()
			step(domain.MemberJoined, "q", domain.MemberData{Member: domain.Member{CallID: "c1", Queue: "q", Node: "fs1", JoinedAt: at()}})
			tick()
			step(domain.MemberJoined, "q", domain.MemberData{Member: domain.Member{CallID: "c2", Queue: "q", Node: "fs1", JoinedAt: at()}})
			tick()
			step(domain.AgentStatusChanged, "a0", domain.StatusData{Status: domain.StatusAvailable, At: at()})
			tick()
			step(domain.AgentStatusChanged, "a2", domain.StatusData{Status: domain.StatusOnBreak, At: at()}) // offers nothing
			if len(offersApart) != 2 || fmt.Sprint(offersInline) != fmt.Sprint(offersApart) {
				t.Fatalf("offers inline %v, apart %v (want two, the same)", offersInline, offersApart)
			}
			a, err := apart.s.Checksum(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			i, err := inline.s.Checksum(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if a != i {
				t.Fatalf("state after the same events differs: inline %s, apart %s", i, a)
			}
		})
	}
}

// A gap (an earlier event not applied yet) applies nothing and decides
// nothing.
func TestApplyAndDecideDecidesNothingOnAGap(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.join("q", "c", 0, nil)
	raw, _ := json.Marshal(domain.StatusData{Status: domain.StatusAvailable, At: f.clock.UnixMilli()})
	st := domain.Stream(domain.AgentStatusChanged)
	ev := Event{Stream: st, Seq: f.seq[st] + 2, Type: domain.AgentStatusChanged, ID: "a", Data: raw, At: f.clock}
	r, o, err := f.s.ApplyAndDecide(context.Background(), ev, "test", "o1", f.clock)
	if err != nil || r.Status != Gap || o != nil {
		t.Fatalf("got %+v, offer %v, err %v; want a gap and no offer", r, o, err)
	}
	if got := f.decide("q"); got != nil {
		t.Fatalf("agent offered %v though its becoming available was not applied", got)
	}
}

// A decision that fails (a queue's configuration edited into something
// unreadable) does not fail or undo the event applied before it.
func TestApplyAndDecideKeepsTheEventWhenTheDecisionFails(t *testing.T) {
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.join("q", "c", 0, nil)
	if err := f.s.rdb.HSet(context.Background(), f.s.key("q", "q"), "cfg", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(domain.StatusData{Status: domain.StatusAvailable, At: f.clock.UnixMilli()})
	st := domain.Stream(domain.AgentStatusChanged)
	ev := Event{Stream: st, Seq: f.seq[st] + 1, Type: domain.AgentStatusChanged, ID: "a", Data: raw, At: f.clock}
	r, o, err := f.s.ApplyAndDecide(context.Background(), ev, "test", "o1", f.clock)
	var derr *DecideError
	if !errors.As(err, &derr) || r.Status != Applied || o != nil {
		t.Fatalf("got %+v, offer %v, err %v; want the event applied and a DecideError", r, o, err)
	}
	if a, err := f.s.Agent(context.Background(), "a"); err != nil || a.Status != domain.StatusAvailable || a.State != domain.StateIdle {
		t.Fatalf("agent after the event: %+v %v", a, err)
	}
}
