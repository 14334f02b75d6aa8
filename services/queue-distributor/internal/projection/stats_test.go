package projection

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// The stats over any window are those of the members who ended in it,
// counted one by one, and the longest wait is the earliest join among the
// callers waiting (not those being offered): random joins, offers,
// requeues and ends over about three hours, read at random times over
// windows of whole 10 s buckets, parts of one, and more than the day the
// history is kept.
func TestStatsOverAnyWindowCountEachEndedMember(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q", ServiceLevelSeconds: 20})
	rng := rand.New(rand.NewPCG(7, 11))

	type end struct {
		at, wait int64
		kind     string
	}
	var ends []end
	joined := map[string]int64{}   // members in the queue → join time (ms)
	offered := map[string]string{} // members being offered → offer id
	n := 0
	pick := func(from map[string]int64, skip func(string) bool) string {
		keys := slices.Sorted(maps.Keys(from))
		keys = slices.DeleteFunc(keys, skip)
		if len(keys) == 0 {
			return ""
		}
		return keys[rng.IntN(len(keys))]
	}
	r2 := func(x float64) float64 { return math.Floor(x*100+0.5) / 100 }
	want := func(now time.Time, window time.Duration) QueueStats {
		st := QueueStats{Queue: "q", ServiceLevelPct: 100}
		oldest := now.UnixMilli()
		for c, j := range joined {
			if offered[c] == "" {
				st.Waiting++
				oldest = min(oldest, j)
			}
		}
		st.LongestWaitSeconds = r2(float64(now.UnixMilli()-oldest) / 1000)
		inSL, waitSum := 0, int64(0)
		last := int64(0)
		for _, e := range ends {
			last = max(last, e.at)
		}
		for _, e := range ends {
			// in the window, and still kept: a day back from the latest end
			if e.at < now.Add(-window).UnixMilli() || e.at < last-HistoryKept.Milliseconds() {
				continue
			}
			switch e.kind {
			case "answered":
				st.Answered++
				waitSum += max(e.wait, 0)
				if e.wait <= 20_000 {
					inSL++
				}
			case "abandoned":
				st.Abandoned++
			default:
				st.Exited++
			}
		}
		if st.Answered+st.Abandoned > 0 {
			st.ServiceLevelPct = r2(100 * float64(inSL) / float64(st.Answered+st.Abandoned))
		}
		if st.Answered > 0 {
			st.ASASeconds = r2(float64(waitSum) / float64(st.Answered) / 1000)
		}
		if ended := st.Answered + st.Abandoned + st.Exited; ended > 0 {
			st.AbandonRatePct = r2(100 * float64(st.Abandoned) / float64(ended))
		}
		return st
	}
	check := func(step int) {
		t.Helper()
		for _, window := range []time.Duration{7 * time.Second, 10 * time.Second, 37500 * time.Millisecond, 15 * time.Minute,
			time.Hour + 3*time.Second, 2 * time.Hour, 25 * time.Hour} {
			now := f.clock.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
			switch rng.IntN(4) {
			case 0: // on a bucket's edge
				now = time.UnixMilli((f.clock.UnixMilli() + 9_999) / 10_000 * 10_000)
			case 1: // the window starts where a call ended
				if len(ends) > 0 {
					now = time.UnixMilli(ends[rng.IntN(len(ends))].at).Add(window)
				}
			case 2: // calls ended after now (another instance's clock ahead)
				now = f.clock.Add(-time.Duration(rng.IntN(60_000)) * time.Millisecond)
			}
			got, ok, err := f.s.Stats(ctx, "q", now, window)
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			got.Agents = nil
			if w := want(now, window); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("step %d, window %v:\n got %+v\nwant %+v", step, window, got, w)
			}
		}
	}
	for step := range 700 {
		f.tick(time.Duration(rng.IntN(30_000)) * time.Millisecond)
		if rng.IntN(4) == 0 { // to a bucket's edge
			f.clock = time.UnixMilli((f.clock.UnixMilli() + 9_999) / 10_000 * 10_000)
		}
		at := f.clock.UnixMilli()
		switch r := rng.IntN(10); {
		case r < 4 || len(joined) == 0:
			n++
			c := fmt.Sprintf("c%d", n)
			f.join("q", c, rng.IntN(3), nil)
			joined[c] = at
		case r < 6:
			if c := pick(joined, func(c string) bool { return offered[c] != "" }); c != "" {
				offered[c] = fmt.Sprintf("o%d", step)
				f.ev(domain.MemberOffered, "q", domain.OfferData{CallID: c, OfferID: offered[c], Agents: []string{"nobody"}, At: at})
			}
		case r < 7:
			if c := pick(joined, func(c string) bool { return offered[c] == "" }); c != "" {
				f.ev(domain.MemberRequeued, "q", domain.MemberEndData{CallID: c, OfferID: offered[c], Reason: "no_answer", At: at})
				delete(offered, c)
			}
		default:
			c := pick(joined, func(string) bool { return false })
			wait := at - joined[c]
			if rng.IntN(20) == 0 { // clocks apart: a wait below zero, counted as none
				wait = -int64(rng.IntN(5_000)) - 1
			}
			switch k := rng.IntN(4); k {
			case 0, 1:
				f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: c, WaitMS: wait, At: at})
				ends = append(ends, end{at, wait, "answered"})
			case 2:
				f.ev(domain.MemberAbandoned, "q", domain.MemberEndData{CallID: c, WaitMS: wait, At: at})
				ends = append(ends, end{at, wait, "abandoned"})
			default:
				f.ev(domain.MemberExited, "q", domain.MemberEndData{CallID: c, Reason: "timeout", WaitMS: wait, At: at})
				ends = append(ends, end{at, wait, "exited"})
			}
			delete(joined, c)
			delete(offered, c)
		}
		if step%25 == 0 {
			check(step)
		}
	}
	check(700)

	// A day later, one more end: the history and its buckets keep a day.
	f.tick(25 * time.Hour)
	f.join("q", "late", 0, nil)
	f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "late", WaitMS: 0, At: f.clock.UnixMilli()})
	delete(joined, "late")
	ends = append(ends, end{f.clock.UnixMilli(), 0, "answered"})
	check(701)
	rdb := f.s.rdb
	buckets, _ := rdb.ZCard(ctx, f.s.key("hbk", "q")).Result()
	sums, _ := rdb.HLen(ctx, f.s.key("hsum", "q")).Result()
	if buckets != 1 || sums != 1 {
		t.Errorf("%d buckets and %d sums kept a day after the others ended; want 1 and 1", buckets, sums)
	}

	f.ev(domain.QueueDeleted, "q", struct{}{})
	for _, key := range []string{"hbk", "hsum", "hist", "wait"} {
		if n, _ := rdb.Exists(ctx, f.s.key(key, "q")).Result(); n != 0 {
			t.Errorf("%s:q left after the queue was deleted", key)
		}
	}
}

// Old buckets go in chunks: a day of buckets (8,640 at most) is more than
// one Lua unpack takes, and a queue quiet for a day then drops them all at
// its next call's end.
func TestADayOfBucketsIsDroppedAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.queue(domain.Queue{Name: "q"})
	const buckets = 8100
	for i := range buckets {
		c := fmt.Sprint("c", i)
		f.join("q", c, 0, nil)
		f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: c, WaitMS: 1000, At: f.clock.UnixMilli()})
		f.tick(10 * time.Second)
	}
	f.tick(25 * time.Hour)
	f.join("q", "late", 0, nil)
	if r := f.ev(domain.MemberAnswered, "q", domain.MemberEndData{CallID: "late", WaitMS: 1000, At: f.clock.UnixMilli()}); r.Status != Applied {
		t.Fatalf("the end a day later: %+v", r)
	}
	n, _ := f.s.rdb.ZCard(ctx, f.s.key("hbk", "q")).Result()
	sums, _ := f.s.rdb.HLen(ctx, f.s.key("hsum", "q")).Result()
	st, _, _ := f.s.Stats(ctx, "q", f.clock, 24*time.Hour)
	if n != 1 || sums != 1 || st.Answered != 1 {
		t.Fatalf("%d buckets, %d sums, %d answered in a day; want 1, 1, 1", n, sums, st.Answered)
	}
}
