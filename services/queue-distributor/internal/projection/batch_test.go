package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// eventLog is a stream of events with the sequences their streams would
// give them, built by hand.
type eventLog struct {
	evs   []Event
	seq   map[string]uint64
	clock time.Time
}

func (l *eventLog) add(typ, id string, data any) {
	st := domain.Stream(typ)
	l.seq[st]++
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	l.clock = l.clock.Add(137 * time.Millisecond)
	l.evs = append(l.evs, Event{Stream: st, Seq: l.seq[st], Type: typ, ID: id, Data: raw, At: l.clock, EventID: fmt.Sprintf("%s-%d", st, l.seq[st])})
}

// again stores the i-th event once more under a new sequence, with its
// own event id (a copy re-published under a new message id).
func (l *eventLog) again(i int) {
	ev := l.evs[i]
	l.seq[ev.Stream]++
	ev.Seq = l.seq[ev.Stream]
	l.evs = append(l.evs, ev)
}

// batchLog touches every kind of event: queues and agents configured,
// agents logging in, callers joining, offers answered, declined (up to
// max-no-answer), wrapped up, callers abandoning, a strategy change that
// reindexes a queue, and events the projection must ignore (an answer
// for an offer never made, a requeue for an offer that was not this one).
func batchLog() []Event {
	l := &eventLog{seq: map[string]uint64{}, clock: time.UnixMilli(1_800_000_000_000)}
	ms := func() int64 { return l.clock.UnixMilli() }
	l.add(domain.QueueCreated, "q", domain.QueueData{Queue: domain.Queue{Name: "q", Strategy: domain.LongestIdle, ServiceLevelSeconds: 20}})
	l.add(domain.QueueCreated, "r", domain.QueueData{Queue: domain.Queue{Name: "r", Strategy: domain.RoundRobin}})
	for i := range 100 {
		a := fmt.Sprint("a", i)
		l.add(domain.AgentCreated, a, domain.AgentData{Agent: domain.Agent{ID: a, Contact: "user/" + a, MaxNoAnswer: 2, Skills: map[string]int{"en": i % 4}}})
		l.add(domain.TierSet, "q", domain.TierData{Agent: a, Level: 1 + i%3, Position: i})
		if i%2 == 0 {
			l.add(domain.TierSet, "r", domain.TierData{Agent: a, Level: 1, Position: 100 - i})
		}
		l.add(domain.AgentStatusChanged, a, domain.StatusData{Status: domain.StatusAvailable, At: ms()})
	}
	for i := range 150 {
		q := []string{"q", "r"}[i%2]
		l.add(domain.MemberJoined, q, domain.MemberData{Member: domain.Member{CallID: fmt.Sprint("m", i), Queue: q, Node: "fs1", Priority: i % 3, JoinedAt: ms(), MaxWait: 60}})
	}
	for i := range 100 {
		a, m, q, o := fmt.Sprint("a", i), fmt.Sprint("m", i), []string{"q", "r"}[i%2], fmt.Sprint("o", i)
		l.add(domain.AgentStateChanged, a, domain.StateData{State: domain.StateOffered, CallID: m, Queue: q, OfferID: o, Leg: "leg-" + o, Owner: "qd", Node: "fs1", At: ms()})
		l.add(domain.MemberOffered, q, domain.OfferData{CallID: m, OfferID: o, Agents: []string{a}, At: ms()})
		switch i % 4 {
		case 0, 1:
			l.add(domain.AgentStateChanged, a, domain.StateData{State: domain.StateInCall, CallID: m, Queue: q, OfferID: o, Leg: "leg-" + o, WaitMS: 900, At: ms()})
			l.add(domain.MemberAnswered, q, domain.MemberEndData{CallID: m, OfferID: o, Agent: a, WaitMS: 900 + int64(i)*1000, At: ms()})
			if i%8 == 0 {
				l.add(domain.AgentStateChanged, a, domain.StateData{State: domain.StateWrapUp, CallID: m, TalkMS: 60000, ReadyAt: ms() + 5000, At: ms()})
				l.add(domain.AgentStateChanged, a, domain.StateData{State: domain.StateIdle, At: ms() + 5000})
			}
		case 2:
			l.add(domain.AgentOfferDeclined, a, domain.DeclineData{CallID: m, OfferID: o, Reason: "no_answer", NoAnswer: true, ReadyAt: ms() + 10000, At: ms()})
			l.add(domain.MemberRequeued, q, domain.MemberEndData{CallID: m, OfferID: o, Reason: "not_answered", At: ms()})
		}
	}
	// Stale: the projection records these and changes nothing.
	l.add(domain.AgentStateChanged, "a99", domain.StateData{State: domain.StateInCall, CallID: "m99", OfferID: "never", At: ms()})
	l.add(domain.MemberRequeued, "q", domain.MemberEndData{CallID: "m2", OfferID: "o-old", At: ms()})
	l.add(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "ghost", At: ms()})
	for i := 100; i < 150; i += 3 {
		l.add(domain.MemberAbandoned, []string{"q", "r"}[i%2], domain.MemberEndData{CallID: fmt.Sprint("m", i), WaitMS: 30000, At: ms()})
	}
	// Copies under new sequences of events the state would take again
	// (joins, logins): refused by their ids.
	for i := 0; i < len(l.evs); i += 11 {
		l.again(i)
	}
	l.add(domain.QueueUpdated, "q", domain.QueueData{Queue: domain.Queue{Name: "q", Strategy: domain.FewestCalls, ServiceLevelSeconds: 30}})
	l.add(domain.TierRemoved, "r", domain.TierData{Agent: "a4"})
	l.add(domain.AgentUpdated, "a5", domain.AgentData{Agent: domain.Agent{ID: "a5", Contact: "user/a5b", Skills: map[string]int{"fr": 3}}})
	for i := 80; i < 100; i++ {
		l.add(domain.AgentStatusChanged, fmt.Sprint("a", i), domain.StatusData{Status: domain.StatusOnBreak, At: ms()})
	}
	return l.evs
}

// redelivered is evs as a consumer could see them: some delivered twice
// at once, some again much later, some pairs swapped, one lost.
func redelivered(evs []Event) []Event {
	var out []Event
	for i := 0; i < len(evs); i++ {
		switch {
		case i%29 == 5 && i+1 < len(evs):
			out = append(out, evs[i+1], evs[i]) // the later first: the earlier is then a duplicate
			i++
		case i == 200:
			// lost: the consumer skipped it (gaps mode goes on)
		default:
			out = append(out, evs[i])
		}
		if i%7 == 0 {
			out = append(out, evs[i])
		}
		if i%13 == 0 && i > 50 {
			out = append(out, evs[i-50])
		}
	}
	return out
}

// TestApplyBatchEqualsOneByOne: a batch has the effect of applying its
// events one by one — the same result per event and the same state —
// whatever the batch boundaries, with duplicates and stale events in the
// input.
func TestApplyBatchEqualsOneByOne(t *testing.T) {
	ctx := context.Background()
	evs := redelivered(batchLog())
	if len(evs) <= MaxBatch {
		t.Fatalf("%d events: the log must span more than one script call", len(evs))
	}

	one := newFixture(t)
	var want []ApplyResult
	for _, ev := range evs {
		r, err := one.s.Apply(ctx, ev, false)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	count := map[string]int{}
	for _, r := range want {
		count[r.Status]++
	}
	if count[Applied] == 0 || count[Dup] == 0 || count[Ignored] == 0 {
		t.Fatalf("one by one gave %v: the log must have applied, duplicate and ignored events", count)
	}
	wantSum, err := one.s.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantIdx := indexes(t, one.s)

	rng := rand.New(rand.NewPCG(7, 7))
	cases := []struct {
		name  string
		sizes func() int
	}{
		{"whole", func() int { return len(evs) }},
		{"one", func() int { return 1 }},
		{"random", func() int { return 1 + rng.IntN(60) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			var got []ApplyResult
			for rest := evs; len(rest) > 0; {
				n := min(c.sizes(), len(rest))
				rs, err := f.s.ApplyBatch(ctx, rest[:n])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, rs...)
				rest = rest[n:]
			}
			if len(got) != len(want) {
				t.Fatalf("%d results, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Status != want[i].Status || got[i].Detail != want[i].Detail || !slices.Equal(got[i].Queues, want[i].Queues) {
					t.Fatalf("event %d (%s #%d %s): batch %+v, one by one %+v", i, evs[i].Stream, evs[i].Seq, evs[i].Type, got[i], want[i])
				}
			}
			if sum, err := f.s.Checksum(ctx); err != nil || sum != wantSum {
				t.Fatalf("checksum %s (%v), one by one %s", sum, err, wantSum)
			}
			// The indexes the checksum leaves out (they follow the clock)
			// match too: the events carry their time.
			if idx := indexes(t, f.s); !slices.Equal(idx, wantIdx) {
				t.Fatalf("idle and wake sets differ:\n batch %v\n one by one %v", idx, wantIdx)
			}
		})
	}
}

// indexes lists the idle and wake sets with their scores.
func indexes(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, k := range []string{"idle:q", "idle:r", "wake"} {
		z, err := s.rdb.ZRangeWithScores(ctx, s.key(k), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range z {
			out = append(out, fmt.Sprintf("%s %v=%v", k, e.Member, e.Score))
		}
	}
	return out
}

// TestApplyBatchStopsAtAFailingEvent: the events before the failure stay
// applied, the error names the event, the rest are not applied, and the
// failing event is recorded exactly when Apply records it (once its data
// was read: an event that failed half way must not be applied again).
// Data the scripts cannot read never reaches them (CheckData), so the
// failure here is Redis refusing a command: a key of the wrong type.
func TestApplyBatchStopsAtAFailingEvent(t *testing.T) {
	ctx := context.Background()
	at := time.UnixMilli(1_800_000_000_000)
	good := []Event{
		{Stream: "QUEUES", Seq: 1, Type: domain.QueueCreated, ID: "q", Data: raw(domain.QueueData{Queue: domain.Queue{Name: "q", Strategy: domain.TopDown}}), At: at},
		{Stream: "AGENTS", Seq: 1, Type: domain.AgentCreated, ID: "a", Data: raw(domain.AgentData{Agent: domain.Agent{ID: "a", Contact: "user/a"}}), At: at},
	}
	after := Event{Stream: "AGENTS", Seq: 3, Type: domain.AgentStatusChanged, ID: "a", Data: raw(domain.StatusData{Status: domain.StatusAvailable, At: at.UnixMilli()}), At: at}
	cases := []struct {
		name    string
		corrupt string // a key set to a string beforehand: "a:b" is agent b's hash
		bad     Event
	}{
		{"an agent's key of the wrong type", "a:b", Event{Stream: "AGENTS", Seq: 2, Type: domain.AgentStatusChanged, ID: "b", Data: raw(domain.StatusData{Status: domain.StatusOnBreak, At: at.UnixMilli()}), At: at}},
		{"a queue's key of the wrong type", "q:r", Event{Stream: "QUEUES", Seq: 2, Type: domain.QueueCreated, ID: "r", Data: raw(domain.QueueData{Queue: domain.Queue{Name: "r", Strategy: domain.TopDown}}), At: at}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			one, batch := newFixture(t), newFixture(t)
			for _, f := range []*fixture{one, batch} {
				if err := f.s.rdb.Set(ctx, f.s.prefix+c.corrupt, "not a hash", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range good {
				if _, err := one.s.Apply(ctx, ev, false); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := one.s.Apply(ctx, c.bad, false); err == nil {
				t.Fatal("Apply of the bad event succeeded")
			}
			rs, err := batch.s.ApplyBatch(ctx, append(append(slices.Clone(good), c.bad), after))
			if err == nil || len(rs) != len(good) {
				t.Fatalf("results %+v, error %v: want %d results and an error", rs, err, len(good))
			}
			for _, st := range []string{"QUEUES", "AGENTS"} {
				want, _ := one.s.LastApplied(ctx, st)
				got, _ := batch.s.LastApplied(ctx, st)
				if got != want {
					t.Errorf("%s at #%d after the batch, #%d after Apply one by one", st, got, want)
				}
			}
			wantSum, _ := one.s.Checksum(ctx)
			if sum, _ := batch.s.Checksum(ctx); sum != wantSum {
				t.Errorf("checksum %s after the batch, %s one by one", sum, wantSum)
			}
		})
	}
}
