package projection

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Of many instances claiming the same job at once, exactly one gets it.
func TestClaimIsHeldByOne(t *testing.T) {
	f := newFixture(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := f.s.Claim(context.Background(), "announce:c-1:1", time.Minute); err != nil {
				t.Error(err)
			} else if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claims won, want 1", won.Load())
	}
	if ok, _ := f.s.Claim(context.Background(), "announce:c-1:2", time.Minute); !ok {
		t.Fatal("the next announcement could not be claimed")
	}
}

// "No agent since" starts at the first look without agents, holds while
// there are none, and ends when one logs in.
func TestNoAgentSince(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000)
	for i, tc := range []struct {
		at       time.Time
		hasAgent bool
		want     time.Time
	}{
		{t0, false, t0},
		{t0.Add(5 * time.Second), false, t0},
		{t0.Add(6 * time.Second), true, time.Time{}},
		{t0.Add(9 * time.Second), false, t0.Add(9 * time.Second)},
	} {
		got, err := f.s.NoAgentSince(ctx, "support", tc.at, tc.hasAgent)
		if err != nil || !got.Equal(tc.want) {
			t.Fatalf("step %d: %v %v, want %v", i, got, err, tc.want)
		}
	}
}
