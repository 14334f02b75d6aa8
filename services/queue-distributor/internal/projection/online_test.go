package projection

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// Whether a queue has an agent logged in follows every event that can
// change it: status, tiers, deletions — in either order.
func TestLoggedInFollowsStatusTiersAndDeletions(t *testing.T) {
	ctx := context.Background()
	status := func(f *fixture, id, st string) {
		f.ev(domain.AgentStatusChanged, id, domain.StatusData{Status: st, At: f.clock.UnixMilli()})
	}
	// a1 in q (level 1, position 1), available
	a1Available := func(f *fixture) { f.agent("a1", "q", 1, 1, nil); f.available("a1") }
	// call joins q and is offered to a1
	offerToA1 := func(t *testing.T, f *fixture, call string) *Offer {
		f.join("q", call, 0, nil)
		o, err := f.s.Decide(ctx, "q", "test", "o"+call, "", f.clock)
		if err != nil || o == nil {
			t.Fatalf("decide: %v %v", o, err)
		}
		f.ev(domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateOffered, CallID: call, Queue: "q", OfferID: o.ID, At: f.clock.UnixMilli()})
		return o
	}
	for _, tc := range []struct {
		name   string
		events func(f *fixture)
		want   bool
	}{
		{"nobody in the queue", func(f *fixture) {}, false},
		{"an agent logged out", func(f *fixture) { f.agent("a1", "q", 1, 1, nil) }, false},
		{"available", a1Available, true},
		{"on a break", func(f *fixture) {
			f.agent("a1", "q", 1, 1, nil)
			status(f, "a1", domain.StatusOnBreak)
		}, true},
		{"logged out again", func(f *fixture) {
			a1Available(f)
			status(f, "a1", domain.StatusLoggedOut)
		}, false},
		{"logged in before the tier was set", func(f *fixture) {
			f.ev(domain.AgentCreated, "a1", domain.AgentData{Agent: domain.Agent{ID: "a1", Contact: "user/a1"}})
			f.available("a1")
			f.ev(domain.TierSet, "q", domain.TierData{Agent: "a1", Level: 1, Position: 1})
		}, true},
		{"logged in to another queue only", func(f *fixture) {
			f.queue(domain.Queue{Name: "other", Strategy: "top-down"})
			f.agent("a1", "other", 1, 1, nil)
			f.available("a1")
		}, false},
		{"tier removed", func(f *fixture) {
			a1Available(f)
			f.ev(domain.TierRemoved, "q", domain.TierData{Agent: "a1"})
		}, false},
		{"tier removed and set again", func(f *fixture) {
			a1Available(f)
			f.ev(domain.TierRemoved, "q", domain.TierData{Agent: "a1"})
			f.ev(domain.TierSet, "q", domain.TierData{Agent: "a1", Level: 2, Position: 1})
		}, true},
		{"agent deleted", func(f *fixture) {
			a1Available(f)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
		}, false},
		{"queue deleted and made again", func(f *fixture) {
			a1Available(f)
			f.ev(domain.QueueDeleted, "q", struct{}{})
			f.queue(domain.Queue{Name: "q", Strategy: "top-down"})
		}, false},
		{"one of two logs out", func(f *fixture) {
			f.agent("a1", "q", 1, 1, nil)
			f.agent("a2", "q", 1, 2, nil)
			f.available("a1")
			f.available("a2")
			status(f, "a1", domain.StatusLoggedOut)
		}, true},
		{"logged out while in two queues", func(f *fixture) {
			f.queue(domain.Queue{Name: "other", Strategy: "top-down"})
			f.agent("a1", "q", 1, 1, nil)
			f.ev(domain.TierSet, "other", domain.TierData{Agent: "a1", Level: 1, Position: 1})
			f.available("a1")
			status(f, "a1", domain.StatusLoggedOut)
		}, false},
		{"deleted, made again, logged in", func(f *fixture) {
			a1Available(f)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
			a1Available(f)
		}, true},
		{"deleted, made again, not logged in", func(f *fixture) {
			a1Available(f)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
			f.agent("a1", "q", 1, 1, nil)
		}, false},
		{"put on a break by max_no_answer", func(f *fixture) {
			f.agent("a1", "q", 1, 1, nil) // max_no_answer 2
			f.available("a1")
			for i := range 2 {
				call := fmt.Sprint("c", i)
				o := offerToA1(t, f, call)
				f.ev(domain.AgentOfferDeclined, "a1", domain.DeclineData{CallID: call, OfferID: o.ID, Reason: "no_answer", NoAnswer: true, At: f.clock.UnixMilli()})
			}
			if a, _ := f.s.Agent(ctx, "a1"); a.Status != domain.StatusOnBreak {
				t.Fatalf("status %s after two no-answers, want on_break", a.Status)
			}
		}, true},
		{"busy on a call", func(f *fixture) {
			a1Available(f)
			offerToA1(t, f, "c1")
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.queue(domain.Queue{Name: "q", Strategy: "top-down"})
			tc.events(f)
			got, err := f.s.LoggedIn(ctx, "q")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("LoggedIn = %v, want %v", got, tc.want)
			}
			if want := loggedInByScan(t, f, "q"); got != want {
				t.Fatalf("LoggedIn = %v, but the queue's agents read one by one say %v", got, want)
			}
		})
	}
}

// loggedInByScan answers LoggedIn the long way: every agent of the
// queue's tiers, and its status.
func loggedInByScan(t *testing.T, f *fixture, queue string) bool {
	t.Helper()
	ctx := context.Background()
	ids, err := f.s.rdb.HKeys(ctx, f.s.key("tier", queue)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		st, err := f.s.rdb.HGet(ctx, f.s.key("a", id), "status").Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		if st != "" && st != domain.StatusLoggedOut {
			return true
		}
	}
	return false
}

// A caller joining a queue where every agent is busy or on a break asks
// whether anyone is logged in: that is one Redis command, not one per
// agent of the queue.
func TestLoggedInIsOneCommandWhateverTheQueueSize(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q", Strategy: "top-down"})
	for i := range 2000 {
		id := fmt.Sprintf("a%d", i)
		f.agent(id, "q", 1, i, nil)
	}
	f.ev(domain.AgentStatusChanged, "a1999", domain.StatusData{Status: domain.StatusOnBreak, At: f.clock.UnixMilli()})
	h := &reads{}
	f.s.rdb.AddHook(h)
	in, err := f.s.LoggedIn(ctx, "q")
	if err != nil || !in {
		t.Fatalf("LoggedIn = %v %v, want true (a1999 is on a break)", in, err)
	}
	if n := h.n.Load(); n != 1 {
		t.Fatalf("LoggedIn sent %d commands to Redis for 2,000 agents, want 1", n)
	}
}

// mod_callcenter's tier-rule-no-agent-no-wait: a level with nobody logged
// in is not waited for; a level whose agents are logged in but busy or on
// a break is.
func TestTierRuleNoAgentNoWaitLooksAtWhoIsLoggedIn(t *testing.T) {
	for _, tc := range []struct {
		level1 string // status of the level-1 agent
		want   string // offered at once
	}{
		{domain.StatusLoggedOut, "[l2]"},
		{domain.StatusOnBreak, "[]"},
	} {
		t.Run(tc.level1, func(t *testing.T) {
			f := newFixture(t)
			f.queue(domain.Queue{Name: "q", Strategy: domain.TopDown, TierRulesApply: true, TierRuleWaitSeconds: 30})
			f.agent("l1", "q", 1, 1, nil)
			f.agent("l2", "q", 2, 1, nil)
			f.available("l1")
			f.ev(domain.AgentStatusChanged, "l1", domain.StatusData{Status: tc.level1, At: f.clock.UnixMilli()})
			f.available("l2")
			f.join("q", "m", 0, nil)
			if got := fmt.Sprint(f.decide("q")); got != tc.want {
				t.Fatalf("level 1 %s: offered to %s, want %s", tc.level1, got, tc.want)
			}
		})
	}
}

// The stats' agent numbers are counts the events keep (acount:<queue>),
// not a read of every agent: after any sequence of status, state, tier,
// offer, release and delete changes they must be what reading every agent
// of the queue gives — and so must the logged-in agents per tier level
// (which LoggedIn and tier-rule-no-agent-no-wait read).
func TestAgentCountsFollowEveryChange(t *testing.T) {
	ctx := context.Background()
	for seed := range int64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			f := newFixture(t)
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			queues := []string{"q1", "q2", "q3"}
			for _, q := range queues {
				f.queue(domain.Queue{Name: q, Strategy: domain.RingAll})
			}
			agents := []string{"a1", "a2", "a3", "a4", "a5"}
			calls := 0
			statuses := []string{domain.StatusAvailable, domain.StatusOnBreak, domain.StatusLoggedOut}
			for step := range 300 {
				a, q := agents[rng.IntN(len(agents))], queues[rng.IntN(len(queues))]
				var what string
				switch rng.IntN(9) {
				case 0:
					what = "create " + a
					f.ev(domain.AgentCreated, a, domain.AgentData{Agent: domain.Agent{ID: a, Contact: "user/" + a, MaxNoAnswer: 2}})
				case 1:
					what = "delete " + a
					f.ev(domain.AgentDeleted, a, struct{}{})
				case 2:
					what = "tier " + a + " " + q
					f.ev(domain.TierSet, q, domain.TierData{Agent: a, Level: 1 + rng.IntN(2), Position: rng.IntN(5)})
				case 3:
					what = "untier " + a + " " + q
					f.ev(domain.TierRemoved, q, domain.TierData{Agent: a})
				case 4, 5:
					st := statuses[rng.IntN(len(statuses))]
					what = st + " " + a
					f.ev(domain.AgentStatusChanged, a, domain.StatusData{Status: st, At: f.clock.UnixMilli()})
				default:
					// A caller: offered (reserved), then declined, released,
					// or answered and served to the end.
					calls++
					call := fmt.Sprint("c", calls)
					f.join(q, call, 0, nil)
					o, err := f.s.Decide(ctx, q, "test", "o"+call, "", f.clock)
					if err != nil {
						t.Fatal(err)
					}
					what = "caller " + call + " in " + q
					if o == nil {
						break
					}
					ids := make([]string, len(o.Agents))
					for i, oa := range o.Agents {
						ids[i] = oa.Agent.ID
					}
					switch rng.IntN(3) {
					case 0:
						what += ": reserved, released"
						if err := f.s.Release(ctx, q, call, o.ID, true, ids, f.clock); err != nil {
							t.Fatal(err)
						}
					case 1:
						what += ": offered, declined"
						for _, id := range ids {
							f.ev(domain.AgentStateChanged, id, domain.StateData{State: domain.StateOffered, CallID: call, Queue: q, OfferID: o.ID, At: f.clock.UnixMilli()})
							f.ev(domain.AgentOfferDeclined, id, domain.DeclineData{CallID: call, OfferID: o.ID, Reason: "no_answer", NoAnswer: true, At: f.clock.UnixMilli()})
						}
					default:
						what += ": answered by " + ids[0]
						f.ev(domain.AgentStateChanged, ids[0], domain.StateData{State: domain.StateOffered, CallID: call, Queue: q, OfferID: o.ID, At: f.clock.UnixMilli()})
						f.ev(domain.AgentStateChanged, ids[0], domain.StateData{State: domain.StateInCall, CallID: call, OfferID: o.ID, At: f.clock.UnixMilli()})
						if rng.IntN(2) == 0 {
							f.ev(domain.AgentStateChanged, ids[0], domain.StateData{State: domain.StateWrapUp, CallID: call, ReadyAt: f.clock.UnixMilli(), At: f.clock.UnixMilli()})
							f.ev(domain.AgentStateChanged, ids[0], domain.StateData{State: domain.StateIdle, At: f.clock.UnixMilli()})
						}
						if err := f.s.Release(ctx, q, call, o.ID, false, ids[1:], f.clock); err != nil {
							t.Fatal(err)
						}
					}
				}
				f.tick(time.Second)
				for _, q := range queues {
					st, ok, err := f.s.Stats(ctx, q, f.clock, time.Hour)
					if err != nil || !ok {
						t.Fatal(ok, err)
					}
					if want := countByScan(t, f, q); !maps.Equal(st.Agents, want) {
						t.Fatalf("step %d (%s): %s agents %v, reading every agent gives %v", step, what, q, st.Agents, want)
					}
					if got, want := levelsOf(t, f, q), levelsByScan(t, f, q); !maps.Equal(got, want) {
						t.Fatalf("step %d (%s): %s logged in by level %v, reading every agent gives %v", step, what, q, got, want)
					}
					in, _ := f.s.LoggedIn(ctx, q)
					if want := loggedInByScan(t, f, q); in != want {
						t.Fatalf("step %d (%s): %s LoggedIn %v, reading every agent gives %v", step, what, q, in, want)
					}
					// The audit counts as the events do: it finds nothing to repair.
					if diff, checked, err := f.s.Recount(ctx, q, "", ""); err != nil || !checked || len(diff) > 0 {
						t.Fatalf("step %d (%s): %s recount found %v (%v)", step, what, q, diff, err)
					}
				}
			}
		})
	}
}

// countByScan is the stats' agent numbers the long way (what stats.lua
// computed before the counts): every agent of the queue's tiers.
func countByScan(t *testing.T, f *fixture, queue string) map[string]int {
	t.Helper()
	ctx := context.Background()
	out := map[string]int{"logged_out": 0, "available": 0, "on_break": 0, "idle": 0, "offered": 0, "in_call": 0, "wrap_up": 0}
	ids, err := f.s.rdb.HKeys(ctx, f.s.key("tier", queue)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h, err := f.s.rdb.HMGet(ctx, f.s.key("a", id), "status", "state").Result()
		if err != nil {
			t.Fatal(err)
		}
		status, _ := h[0].(string)
		state, _ := h[1].(string)
		if status == "" {
			continue
		}
		out[status]++
		if status != domain.StatusLoggedOut {
			out[state]++
		}
	}
	return out
}

// A member requeued with a retry time (its last offer reached no phone)
// is not offered before it; the wake loop returns its queue when it comes.
func TestRequeuedMemberWaitsForItsRetryTime(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q", Strategy: domain.TopDown})
	f.agent("a1", "q", 1, 1, nil)
	f.available("a1")
	f.join("q", "c1", 0, nil)
	o, err := f.s.Decide(ctx, "q", "test", "o1", "", f.clock)
	if err != nil || o == nil {
		t.Fatalf("decide: %v %v", o, err)
	}
	f.ev(domain.MemberOffered, "q", domain.OfferData{CallID: "c1", OfferID: o.ID, Agents: []string{"a1"}, At: f.clock.UnixMilli()})
	if err := f.s.Release(ctx, "q", "c1", o.ID, false, []string{"a1"}, f.clock); err != nil {
		t.Fatal(err)
	}
	retry := f.clock.Add(time.Second)
	f.ev(domain.MemberRequeued, "q", domain.MemberEndData{CallID: "c1", OfferID: o.ID, Reason: "not_answered", RetryAt: retry.UnixMilli(), At: f.clock.UnixMilli()})
	if got := f.decide("q"); got != nil {
		t.Fatalf("offered to %v before the retry time", got)
	}
	if next, err := f.s.NextWake(ctx); err != nil || !next.Equal(retry) {
		t.Fatalf("next wake %v (%v), want the retry time %v", next, err, retry)
	}
	if qs, _, err := f.s.Wake(ctx, retry.Add(-time.Millisecond)); err != nil || len(qs) != 0 {
		t.Fatalf("wake before the retry time: %v %v", qs, err)
	}
	f.clock = retry
	if qs, _, err := f.s.Wake(ctx, retry); err != nil || len(qs) != 1 || qs[0] != "q" {
		t.Fatalf("wake at the retry time: queues %v (%v), want [q]", qs, err)
	}
	if got := fmt.Sprint(f.decide("q")); got != "[a1]" {
		t.Fatalf("after the retry time offered to %s, want a1", got)
	}
}

// levelsOf is the counts' logged-in agents by tier level (in:<level>).
func levelsOf(t *testing.T, f *fixture, queue string) map[string]int {
	t.Helper()
	h, err := f.s.rdb.HGetAll(context.Background(), f.s.key("acount", queue)).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k, v := range h {
		if strings.HasPrefix(k, "in:") {
			out[k], _ = strconv.Atoi(v)
		}
	}
	return out
}

// levelsByScan is levelsOf the long way: every agent of the queue's tiers.
func levelsByScan(t *testing.T, f *fixture, queue string) map[string]int {
	t.Helper()
	ctx := context.Background()
	tiers, err := f.s.rdb.HGetAll(ctx, f.s.key("tier", queue)).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for id, tier := range tiers {
		status, err := f.s.rdb.HGet(ctx, f.s.key("a", id), "status").Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		if status != "" && status != domain.StatusLoggedOut {
			lvl, _, _ := strings.Cut(tier, ",")
			out["in:"+lvl]++
		}
	}
	return out
}

// Counts that went wrong (a script that failed between taking an agent
// out of them and putting it back) are found and replaced by the recount,
// which then finds nothing more.
func TestRecountRepairsCountsThatWentWrong(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.queue(domain.Queue{Name: "q"})
	f.agent("a", "q", 1, 1, nil)
	f.agent("b", "q", 2, 1, nil)
	f.agent("c", "q", 2, 2, nil)
	f.available("a")
	f.ev(domain.AgentStatusChanged, "b", domain.StatusData{Status: domain.StatusOnBreak, At: f.clock.UnixMilli()})
	key := f.s.key("acount", "q")
	f.s.rdb.HIncrBy(ctx, key, "available", -1)
	f.s.rdb.HDel(ctx, key, "in:2")
	f.s.rdb.HSet(ctx, key, "wrap_up", 3)
	// Not while a rebuild holds the lock, nor while the projection bears
	// no mark of a complete build.
	lock, mark := f.s.key("test-rebuild-lock"), f.s.key("test-mark")
	f.s.rdb.Set(ctx, lock, "x", 0)
	if _, checked, err := f.s.Recount(ctx, "q", lock, mark); checked || err != nil {
		t.Fatalf("recount while a rebuild holds the lock: checked %v (%v)", checked, err)
	}
	f.s.rdb.Del(ctx, lock)
	if _, checked, err := f.s.Recount(ctx, "q", lock, mark); checked || err != nil {
		t.Fatalf("recount of a projection without its mark: checked %v (%v)", checked, err)
	}
	f.s.rdb.Set(ctx, mark, "x", 0)
	diff, checked, err := f.s.Recount(ctx, "q", lock, mark)
	if err != nil || !checked {
		t.Fatal(checked, err)
	}
	if want := []string{"available 0->1", "in:2 0->1", "wrap_up 3->0"}; !slices.Equal(diff, want) {
		t.Fatalf("recount found %q, want %q", diff, want)
	}
	st, _, _ := f.s.Stats(ctx, "q", f.clock, time.Minute)
	if want := countByScan(t, f, "q"); !maps.Equal(st.Agents, want) {
		t.Fatalf("agents after the recount %v, reading every agent gives %v", st.Agents, want)
	}
	if got, want := levelsOf(t, f, "q"), levelsByScan(t, f, "q"); !maps.Equal(got, want) {
		t.Fatalf("logged in by level %v after the recount, reading every agent gives %v", got, want)
	}
	if in, _ := f.s.LoggedIn(ctx, "q"); !in {
		t.Fatal("nobody logged in after the recount")
	}
	if diff, _, err := f.s.Recount(ctx, "q", lock, mark); err != nil || len(diff) > 0 {
		t.Fatalf("second recount found %v (%v)", diff, err)
	}
	if diff, _, err := f.s.Recount(ctx, "nope", lock, mark); err != nil || len(diff) > 0 {
		t.Fatalf("recount of a missing queue: %v (%v)", diff, err)
	}
}
