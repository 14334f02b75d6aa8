package rebuild

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// genEvent is one event of a generated workload, before it is stored.
type genEvent struct {
	Type, ID, CallID string
	Data             any
	At               time.Time
}

// workload produces the event log a busy contact centre would leave: agents
// created, put in queues and logged in, then callers joining, being offered,
// answered or declined and requeued, abandoning or timing out, agents
// wrapping up, taking breaks and logging out, and now and then a queue or
// an agent reconfigured. It keeps a model of the projection's state so that
// every event is one the projection accepts (a rebuild that only ignores
// events would prove nothing), and it is deterministic, so a given size
// always gives the same log.
type workload struct {
	rng   *rand.Rand
	clock time.Time
	limit int
	n     int
	emit  func(genEvent) error
	err   error

	queues   []*wQueue
	agents   []*wAgent
	offers   []*wOffer // ringing
	talking  []*wAgent
	wrapping []*wAgent
	waiting  int
	calls    int
}

type wQueue struct {
	q       domain.Queue
	agents  []*wAgent
	members []*wMember // waiting, in no particular order
}

type wAgent struct {
	a                    domain.Agent
	queues               []int // indexes in workload.queues
	status, state        string
	offer, call          string
	readyAt              int64
	noAnswer             int
	talkingAt, wrapingAt int // index in workload.talking / wrapping, -1 when not there
}

type wMember struct {
	m     domain.Member
	queue *wQueue
}

type wOffer struct {
	id    string
	m     *wMember
	agent *wAgent
}

// generate emits n events to emit (fewer only if emit fails).
func generate(n int, emit func(genEvent) error) error {
	w := &workload{
		rng:   rand.New(rand.NewPCG(1, uint64(n))),
		clock: time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC),
		limit: n,
		emit:  emit,
	}
	w.setup(min(max(n/100, 20), 10000), min(max(n/100000, 2), 10))
	for w.more() {
		w.step()
		w.clock = w.clock.Add(time.Duration(w.rng.IntN(40)) * time.Millisecond)
	}
	return w.err
}

func (w *workload) more() bool { return w.err == nil && w.n < w.limit }

func (w *workload) put(typ, id, callID string, data any) {
	if !w.more() {
		return
	}
	w.n++
	w.err = w.emit(genEvent{Type: typ, ID: id, CallID: callID, Data: data, At: w.clock})
}

func (w *workload) ms() int64 { return w.clock.UnixMilli() }

var strategies = []domain.Strategy{domain.LongestIdle, domain.RoundRobin, domain.TopDown, domain.LeastTalkTime,
	domain.FewestCalls, domain.Sequential, domain.Random, domain.RingAll}

// setup creates the queues and agents and logs most agents in.
func (w *workload) setup(agents, queues int) {
	for i := range queues {
		q := domain.Queue{Name: fmt.Sprintf("sales-%d", i), Strategy: strategies[i%len(strategies)],
			MaxWaitSeconds: 600, ServiceLevelSeconds: 20, WrapUpSeconds: 5, MOHSound: "local_stream://moh"}
		if err := q.Validate(); err != nil {
			w.err = fmt.Errorf("generated queue: %w", err)
			return
		}
		w.queues = append(w.queues, &wQueue{q: q})
		w.put(domain.QueueCreated, q.Name, "", domain.QueueData{Queue: q})
	}
	for i := range agents {
		id := fmt.Sprint(100000 + i)
		a := domain.Agent{ID: id, Name: "Agent " + id, Contact: "user/" + id + "@pbx.example.com", MaxNoAnswer: 3,
			RingTimeoutSeconds: 20, NoAnswerDelaySecs: 10, Skills: map[string]int{"en": 1 + i%5, "billing": i % 3}}
		if err := a.Validate(); err != nil {
			w.err = fmt.Errorf("generated agent: %w", err)
			return
		}
		wa := &wAgent{a: a, status: domain.StatusLoggedOut, state: domain.StateIdle, talkingAt: -1, wrapingAt: -1}
		w.agents = append(w.agents, wa)
		w.put(domain.AgentCreated, id, "", domain.AgentData{Agent: a})
		for range 1 + w.rng.IntN(3) {
			w.setTier(wa, w.rng.IntN(len(w.queues)))
		}
	}
	for _, a := range w.agents {
		if w.rng.IntN(10) < 8 {
			w.status(a, domain.StatusAvailable)
		}
	}
}

func (w *workload) setTier(a *wAgent, qi int) {
	q := w.queues[qi]
	if !slices.Contains(a.queues, qi) {
		a.queues = append(a.queues, qi)
		q.agents = append(q.agents, a)
	}
	w.put(domain.TierSet, q.q.Name, "", domain.TierData{Agent: a.a.ID, Level: 1 + w.rng.IntN(3), Position: 1 + w.rng.IntN(100)})
}

func (w *workload) removeTier(a *wAgent, qi int) {
	q := w.queues[qi]
	a.queues = slices.DeleteFunc(a.queues, func(x int) bool { return x == qi })
	q.agents = slices.DeleteFunc(q.agents, func(x *wAgent) bool { return x == a })
	w.put(domain.TierRemoved, q.q.Name, "", domain.TierData{Agent: a.a.ID})
}

func (w *workload) status(a *wAgent, s string) {
	if s == domain.StatusAvailable {
		a.noAnswer = 0
	}
	a.status = s
	w.put(domain.AgentStatusChanged, a.a.ID, "", domain.StatusData{Status: s, Reason: "generated", At: w.ms()})
}

// step is one thing happening in the contact centre.
func (w *workload) step() {
	switch r := w.rng.IntN(100); {
	case r < 24:
		w.join()
	case r < 50:
		w.offer()
	case r < 70:
		w.ringEnds()
	case r < 84:
		w.hangUp()
	case r < 92:
		w.wrapUpEnds()
	case r < 95:
		w.leave()
	case r < 99:
		a := w.agents[w.rng.IntN(len(w.agents))]
		w.status(a, []string{domain.StatusAvailable, domain.StatusAvailable, domain.StatusOnBreak, domain.StatusLoggedOut}[w.rng.IntN(4)])
	default:
		w.reconfigure()
	}
}

func (w *workload) join() {
	if w.waiting >= 2000 {
		return
	}
	w.calls++
	q := w.queues[w.rng.IntN(len(w.queues))]
	id := fmt.Sprintf("%08x-51a3-4c2e-9d1f-%012x", w.calls, uint64(w.calls)*2654435761%(1<<48))
	m := &wMember{queue: q, m: domain.Member{CallID: id, Queue: q.q.Name, Node: "fs1", Priority: w.rng.IntN(3) / 2,
		CallerNumber: fmt.Sprintf("+4420%07d", w.calls%10000000), CallerName: "Caller", JoinedAt: w.ms(), MaxWait: q.q.MaxWaitSeconds}}
	q.members = append(q.members, m)
	w.waiting++
	w.put(domain.MemberJoined, q.q.Name, id, domain.MemberData{Member: m.m})
}

func takeRandom[T any](rng *rand.Rand, s *[]T) T {
	i := rng.IntN(len(*s))
	v := (*s)[i]
	(*s)[i] = (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v
}

// offer rings an idle agent for a waiting caller, as the distributor's
// claim does: the agent's event, then the member's.
func (w *workload) offer() {
	q := w.queues[w.rng.IntN(len(w.queues))]
	if len(q.members) == 0 || len(q.agents) == 0 {
		return
	}
	var a *wAgent
	for range 16 {
		c := q.agents[w.rng.IntN(len(q.agents))]
		if c.status == domain.StatusAvailable && c.state == domain.StateIdle && c.readyAt <= w.ms() {
			a = c
			break
		}
	}
	if a == nil {
		return
	}
	m := takeRandom(w.rng, &q.members)
	w.waiting--
	o := &wOffer{id: fmt.Sprintf("%08x-0ffe-4000-8000-%012x", w.n, w.rng.Uint64()%(1<<48)), m: m, agent: a}
	a.state, a.offer, a.call = domain.StateOffered, o.id, m.m.CallID
	w.offers = append(w.offers, o)
	w.put(domain.AgentStateChanged, a.a.ID, m.m.CallID, domain.StateData{State: domain.StateOffered, CallID: m.m.CallID, Queue: q.q.Name,
		OfferID: o.id, Leg: "leg-" + o.id, Owner: "qd-1", Node: m.m.Node, At: w.ms()})
	w.put(domain.MemberOffered, q.q.Name, m.m.CallID, domain.OfferData{CallID: m.m.CallID, OfferID: o.id, Agents: []string{a.a.ID}, At: w.ms()})
}

// ringEnds answers a ringing offer, or declines it and puts the caller
// back to wait.
func (w *workload) ringEnds() {
	if len(w.offers) == 0 {
		return
	}
	o := takeRandom(w.rng, &w.offers)
	a, m, q := o.agent, o.m, o.m.queue
	wait := w.ms() - m.m.JoinedAt
	if w.rng.IntN(5) > 0 {
		a.state, a.noAnswer = domain.StateInCall, 0
		a.talkingAt = len(w.talking)
		w.talking = append(w.talking, a)
		w.put(domain.AgentStateChanged, a.a.ID, m.m.CallID, domain.StateData{State: domain.StateInCall, CallID: m.m.CallID, Queue: q.q.Name,
			OfferID: o.id, Leg: "leg-" + o.id, WaitMS: wait, At: w.ms()})
		w.put(domain.MemberAnswered, q.q.Name, m.m.CallID, domain.MemberEndData{CallID: m.m.CallID, OfferID: o.id, Agent: a.a.ID, WaitMS: wait, At: w.ms()})
		return
	}
	a.state, a.offer, a.call = domain.StateIdle, "", ""
	a.readyAt = w.ms() + int64(a.a.NoAnswerDelaySecs)*1000
	a.noAnswer++
	if a.noAnswer >= a.a.MaxNoAnswer && a.status == domain.StatusAvailable {
		a.status = domain.StatusOnBreak // the projection's max-no-answer rule
	}
	w.put(domain.AgentOfferDeclined, a.a.ID, m.m.CallID, domain.DeclineData{CallID: m.m.CallID, OfferID: o.id, Reason: "no_answer",
		Cause: "NO_ANSWER", NoAnswer: true, ReadyAt: a.readyAt, At: w.ms()})
	q.members = append(q.members, m)
	w.waiting++
	w.put(domain.MemberRequeued, q.q.Name, m.m.CallID, domain.MemberEndData{CallID: m.m.CallID, OfferID: o.id, Reason: "not_answered", At: w.ms()})
}

// hangUp ends a call: the agent wraps up.
func (w *workload) hangUp() {
	if len(w.talking) == 0 {
		return
	}
	a := w.talking[w.rng.IntN(len(w.talking))]
	remove(&w.talking, a, func(a *wAgent) *int { return &a.talkingAt })
	a.state = domain.StateWrapUp
	a.readyAt = w.ms() + 5000
	a.wrapingAt = len(w.wrapping)
	w.wrapping = append(w.wrapping, a)
	w.put(domain.AgentStateChanged, a.a.ID, a.call, domain.StateData{State: domain.StateWrapUp, CallID: a.call,
		TalkMS: 10000 + w.rng.Int64N(600000), ReadyAt: a.readyAt, At: w.ms()})
}

// wrapUpEnds is the timer loop's agent.state.changed(idle).
func (w *workload) wrapUpEnds() {
	if len(w.wrapping) == 0 {
		return
	}
	a := w.wrapping[w.rng.IntN(len(w.wrapping))]
	remove(&w.wrapping, a, func(a *wAgent) *int { return &a.wrapingAt })
	a.state, a.offer, a.call = domain.StateIdle, "", ""
	w.put(domain.AgentStateChanged, a.a.ID, "", domain.StateData{State: domain.StateIdle, At: w.ms()})
}

// remove takes a out of s in O(1), keeping the index pos points at current.
func remove(s *[]*wAgent, a *wAgent, pos func(*wAgent) *int) {
	i := *pos(a)
	last := (*s)[len(*s)-1]
	(*s)[i] = last
	*pos(last) = i
	*s = (*s)[:len(*s)-1]
	*pos(a) = -1
}

// leave: a waiting caller hangs up, or its max wait passes.
func (w *workload) leave() {
	q := w.queues[w.rng.IntN(len(w.queues))]
	if len(q.members) == 0 {
		return
	}
	m := takeRandom(w.rng, &q.members)
	w.waiting--
	wait := w.ms() - m.m.JoinedAt
	if w.rng.IntN(3) > 0 {
		w.put(domain.MemberAbandoned, q.q.Name, m.m.CallID, domain.MemberEndData{CallID: m.m.CallID, Reason: "caller hung up", WaitMS: wait, At: w.ms()})
		return
	}
	w.put(domain.MemberExited, q.q.Name, m.m.CallID, domain.MemberEndData{CallID: m.m.CallID, Reason: domain.OutcomeTimeout, WaitMS: wait, At: w.ms()})
}

// reconfigure is an administrator at work: an agent's skills, a tier, or
// now and then a queue's strategy.
func (w *workload) reconfigure() {
	a := w.agents[w.rng.IntN(len(w.agents))]
	switch r := w.rng.IntN(100); {
	case r < 40:
		a.a.Skills["billing"] = w.rng.IntN(5)
		w.put(domain.AgentUpdated, a.a.ID, "", domain.AgentData{Agent: a.a})
	case r < 70:
		w.setTier(a, w.rng.IntN(len(w.queues)))
	case r < 95:
		if len(a.queues) > 1 {
			w.removeTier(a, a.queues[w.rng.IntN(len(a.queues))])
		}
	default:
		q := w.queues[w.rng.IntN(len(w.queues))]
		q.q.MaxWaitSeconds = 300 + 60*w.rng.IntN(10)
		if w.rng.IntN(10) == 0 {
			q.q.Strategy = strategies[w.rng.IntN(len(strategies))]
		}
		w.put(domain.QueueUpdated, q.q.Name, "", domain.QueueData{Queue: q.q})
	}
}
