package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// benchFixture: one queue, 10,000 agents in it (all busy but the ones a
// benchmark frees) and 1,000 callers waiting — the load.
func benchFixture(b *testing.B, strategy domain.Strategy) *fixture {
	t := &testing.T{}
	f := newFixture(t)
	f.t = t
	f.queue(domain.Queue{Name: "q", Strategy: strategy})
	for i := 0; i < 10000; i++ {
		id := fmt.Sprint("a", i)
		f.agent(id, "q", 1+i%3, i%9999, map[string]int{"en": 5})
	}
	for i := 0; i < 1000; i++ {
		f.join("q", fmt.Sprint("m", i), i%3, nil)
	}
	if t.Failed() {
		b.Fatal("fixture failed")
	}
	return f
}

func raw(v any) json.RawMessage { b, _ := json.Marshal(v); return b }

// BenchmarkAgentAvailableToOffer is the projection's share of "agent
// becomes available → offer": apply agent.status.changed(available) and
// decide the offer it makes possible, with 10,000 agents and 1,000
// callers waiting. Reports p50/p99 per operation.
func BenchmarkAgentAvailableToOffer(b *testing.B) {
	for _, s := range []domain.Strategy{domain.LongestIdle, domain.RoundRobin, domain.RingAll} {
		b.Run(string(s), func(b *testing.B) {
			f := benchFixture(b, s)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := fmt.Sprint("a", i%10000)
				f.seq["AGENTS"]++
				start := time.Now()
				r, err := f.s.Apply(ctx, Event{Stream: "AGENTS", Seq: f.seq["AGENTS"], Type: domain.AgentStatusChanged, ID: id,
					Data: raw(domain.StatusData{Status: domain.StatusAvailable}), At: f.clock}, true)
				if err != nil || r.Status != Applied {
					b.Fatal(r, err)
				}
				o, err := f.s.Decide(ctx, "q", "bench", fmt.Sprint("o", i), "", f.clock)
				if err != nil || o == nil {
					b.Fatalf("no offer at %d: %v", i, err)
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				// Put the member back and the agent out of the way.
				f.seq["AGENTS"]++
				_, _ = f.s.Apply(ctx, Event{Stream: "AGENTS", Seq: f.seq["AGENTS"], Type: domain.AgentStatusChanged, ID: id,
					Data: raw(domain.StatusData{Status: domain.StatusLoggedOut}), At: f.clock}, true)
				_ = f.s.Release(ctx, "q", o.Member.CallID, o.ID, true, agentIDsOf(o), f.clock)
				b.StartTimer()
			}
			report(b, lat)
		})
	}
}

func agentIDsOf(o *Offer) []string {
	var ids []string
	for _, a := range o.Agents {
		ids = append(ids, a.Agent.ID)
	}
	return ids
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkApply is the projection's event rate: status changes of
// 10,000 agents in one queue, applied one by one as the follower does.
func BenchmarkApply(b *testing.B) {
	f := benchFixture(b, domain.LongestIdle)
	ctx := context.Background()
	statuses := []string{domain.StatusAvailable, domain.StatusOnBreak}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.seq["AGENTS"]++
		_, err := f.s.Apply(ctx, Event{Stream: "AGENTS", Seq: f.seq["AGENTS"], Type: domain.AgentStatusChanged, ID: fmt.Sprint("a", i%10000),
			Data: raw(domain.StatusData{Status: statuses[(i/10000)%2]}), At: f.clock}, false)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLoggedIn is the question every join asks — is anyone logged in
// to the queue? — in its worst case: 10,000 agents in the queue, none
// idle, one of them logged in (on a break).
//
//	cd services/queue-distributor && go test -run '^$' -bench LoggedIn ./internal/projection
func BenchmarkLoggedIn(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t)
	f.t = t
	f.queue(domain.Queue{Name: "q", Strategy: domain.TopDown})
	for i := range 10000 {
		f.agent(fmt.Sprint("a", i), "q", 1, i%9999, nil)
	}
	f.ev(domain.AgentStatusChanged, "a9999", domain.StatusData{Status: domain.StatusOnBreak})
	if t.Failed() {
		b.Fatal("fixture failed")
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if in, err := f.s.LoggedIn(ctx, "q"); err != nil || !in {
			b.Fatal(in, err)
		}
	}
}

// BenchmarkStats is one queue's live numbers (a wallboard snapshot, GET
// /v1/stats) with 10,000 agents and 1,000 callers waiting, over a
// 15-minute window: one Redis script that holds Redis for its whole
// length. "ended-9000": 9,000 calls ended in the window too (10 a second).
//
//	cd services/queue-distributor && go test -run '^$' -bench 'Stats/' ./internal/projection
func BenchmarkStats(b *testing.B) {
	for _, ended := range []int{0, 9000} {
		b.Run(fmt.Sprint("ended-", ended), func(b *testing.B) {
			f := benchFixture(b, domain.LongestIdle)
			ctx := context.Background()
			from := f.clock.Add(-15 * time.Minute).UnixMilli()
			for i := range ended {
				id := fmt.Sprint("e", i)
				f.join("q", id, 0, nil)
				at, typ := from+int64(i)*100, domain.MemberAnswered
				if i%10 == 0 {
					typ = domain.MemberAbandoned
				}
				f.ev(typ, "q", domain.MemberEndData{CallID: id, WaitMS: int64(i % 60_000), At: at})
			}
			b.ResetTimer()
			for range b.N {
				if _, ok, err := f.s.Stats(ctx, "q", f.clock, 15*time.Minute); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkRecount is the count audit's work for one queue of 10,000
// agents (every agent read in one script; Redis serves nothing else
// meanwhile).
//
//	cd services/queue-distributor && go test -run '^$' -bench Recount ./internal/projection
func BenchmarkRecount(b *testing.B) {
	f := benchFixture(b, domain.LongestIdle)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if diff, checked, err := f.s.Recount(ctx, "q", "", ""); err != nil || !checked || len(diff) > 0 {
			b.Fatal(diff, err)
		}
	}
}
