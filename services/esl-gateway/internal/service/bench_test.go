package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
)

// benchCalls places n socket calls through a gateway, rate per second
// (0: as fast as it can), keeps them all up until the last has been set up
// (n concurrent calls), and measures each set-up from the caller's arrival
// at the simulated FreeSWITCH to call.started arriving at a NATS
// subscriber — an upper bound of the gateway's accept → stored, as it adds
// the simulator's dialplan and the delivery to the subscriber.
func benchCalls(b *testing.B, n int, rate float64) {
	svc := gateway(b, infra.NATS.URL(), func(c *Config) { c.MaxSessions = n + 100 })
	svc.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	sim := fssim.New(fssim.Options{Dialplan: []fssim.Route{fssim.SocketRoute(`^8084$`, svc.SocketAddr(), false)}})
	defer sim.Close()
	nc, err := nats.Connect(infra.NATS.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	var mu sync.Mutex
	placed := map[string]time.Time{}
	arrived := map[string]time.Time{}
	all := make(chan struct{})
	sub, err := nc.Subscribe("calls.*.started", func(m *nats.Msg) {
		now := time.Now()
		e, err := events.Parse(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		arrived[e.CallID] = now
		done := len(arrived) == n
		mu.Unlock()
		if done {
			close(all)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()

	var setups []time.Duration
	var elapsed time.Duration
	for b.Loop() {
		mu.Lock()
		clear(placed)
		clear(arrived)
		mu.Unlock()
		all = make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		chans := make([]*fssim.Channel, 0, n)
		start := time.Now()
		for i := 0; i < n; i++ {
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
			}
			id := fmt.Sprintf("bench-%08d-0000-4000-8000-%012d", b.N, i)
			mu.Lock()
			placed[id] = time.Now()
			mu.Unlock()
			c, err := sim.PlaceCall(ctx, fssim.CallSpec{UUID: id, Destination: "8084", CallerIDNumber: fmt.Sprint(i)})
			if err != nil {
				b.Fatal(err)
			}
			chans = append(chans, c)
		}
		select {
		case <-all:
		case <-ctx.Done():
			mu.Lock()
			b.Fatalf("only %d of %d calls set up", len(arrived), n)
		}
		elapsed += time.Since(start)
		mu.Lock()
		for id, t := range arrived {
			setups = append(setups, t.Sub(placed[id]))
		}
		mu.Unlock()
		b.StopTimer()
		for _, c := range chans {
			c.Hangup("NORMAL_CLEARING")
		}
		for _, c := range chans {
			<-c.Ended
		}
		waitFor(b, time.Minute, func() bool { return svc.gw.ActiveSessions() == 0 && svc.events.Pending() == 0 })
		cancel()
		b.StartTimer()
	}
	slices.Sort(setups)
	pct := func(p float64) float64 {
		return float64(setups[int(p*float64(len(setups)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(setups))/elapsed.Seconds(), "setups/s")
	b.ReportMetric(float64(n), "concurrent")
}

// BenchmarkCallSetup1000At300PerSecond: the load — 1,000
// concurrent calls arriving at 300 per second.
func BenchmarkCallSetup1000At300PerSecond(b *testing.B) { benchCalls(b, 1000, 300) }

// BenchmarkCallSetup1000Unpaced: the same calls as fast as the simulator
// can place them: the sustained set-up rate.
func BenchmarkCallSetup1000Unpaced(b *testing.B) { benchCalls(b, 1000, 0) }
