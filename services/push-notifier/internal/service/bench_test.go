package service

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/apnsfake"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// BenchmarkRequestToAPNs measures, at 1,000 push.requested a second
// (open loop: each request is published on its own schedule, whatever
// the notifier is doing), the time from the publish to the push arriving
// at the fake APNs over the notifier's HTTP/2 connection pool. It
// reports p50_ms, p99_ms and max_ms, and apns_conns (connections the
// pool opened: 1 is one reused connection).
//
// Beside each request, in the same stream and the same millisecond, a
// small probe is published and taken by a pull consumer of the bench's
// own: floor_p50_ms and floor_p99_ms are JetStream's publish → delivery
// at that moment, with nothing after it — the part of the push's time
// that is the message broker's (its file store pauses deliveries for
// tens of milliseconds every few thousand messages on this machine; see
// docs/benchmarks.md).
//
// It runs twice, side by side: "intake" as the service runs (a fresh
// request's devices, rate limit and claims in one Redis round trip) and
// "step-by-step" without it (record and devices, then the claim). Each
// has a nats-server of its own, started for it: a server that has already
// carried a run's messages delivers the next run's with a smaller tail,
// which would favour whichever runs second.
//
//	cd services/push-notifier && go test -run '^$' -bench RequestToAPNs -benchtime 10000x ./internal/service
func BenchmarkRequestToAPNs(b *testing.B) {
	b.Run("step-by-step", func(b *testing.B) { benchRequestToAPNs(b, true) })
	b.Run("intake", func(b *testing.B) { benchRequestToAPNs(b, false) })
}

func benchRequestToAPNs(b *testing.B, stepByStep bool) {
	var mu sync.Mutex
	published := map[string]time.Time{} // apns-id → publish time
	var lat []time.Duration
	arrived := make(chan struct{}, 1<<16)
	hook := func(r apnsfake.Request) {
		mu.Lock()
		if t0, ok := published[r.ApnsID]; ok {
			lat = append(lat, r.Received.Sub(t0))
		}
		mu.Unlock()
		arrived <- struct{}{}
	}
	w := newWorldWith(b, apnsfake.Options{OnRequest: hook}, func(c *Config) {
		c.RateLimit, c.LogLevel, c.Workers, c.stepByStep = 0, "warn", 64, stepByStep
	})
	const users = 50
	// One request in ten has a probe beside it: enough samples for the
	// floor's p99, without doubling the broker's load (a probe a request
	// added a tenth of the machine's CPU and was itself part of the tail
	// it measured).
	const probeEvery = 10
	devs := make([]string, users)
	for i := range users {
		devs[i] = apnsToken(fmt.Sprintf("bench-%d", i))
		w.register(fmt.Sprintf("bench%d", i), devs[i], domain.IOS, domain.Production)
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	var floor []time.Duration
	probeSent := map[string]time.Time{}
	probes, err := w.js.CreateOrUpdateConsumer(b.Context(), "PUSH", jetstream.ConsumerConfig{
		Name: "bench-floor-" + run, FilterSubjects: []string{"push.bench-floor.probe"},
		AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverNewPolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	pc, err := probes.Consume(func(m jetstream.Msg) {
		at := time.Now()
		mu.Lock()
		if t0, ok := probeSent[string(m.Data())]; ok {
			floor = append(floor, at.Sub(t0))
		}
		mu.Unlock()
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Stop()
	send := func(tag string, n int, measured bool) {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			u := i % users
			d := domain.RequestData{RequestID: fmt.Sprintf("b-%s-%s-%d", run, tag, i), User: fmt.Sprintf("bench%d", u), CallID: "c0ffee00-0000-4000-8000-000000000001"}
			e, _ := events.New("", "switchyard/bench/1", domain.TypeRequested, "", d.CallID, d)
			body, _ := e.Marshal()
			m := &nats.Msg{Subject: "push." + d.User + ".requested", Data: body, Header: nats.Header{}}
			m.Header.Set(nats.MsgIdHdr, e.ID)
			id := domain.MessageID(d.RequestID, domain.DeviceID(devs[u]))
			probe := fmt.Sprintf("%s-%s-%d", run, tag, i)
			mu.Lock()
			if measured {
				published[id] = time.Now()
				if i%probeEvery == 0 {
					probeSent[probe] = time.Now()
				}
			}
			mu.Unlock()
			if _, err := w.js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
			if i%probeEvery != 0 {
				continue
			}
			if _, err := w.js.PublishAsync("push.bench-floor.probe", []byte(probe)); err != nil {
				b.Fatal(err)
			}
		}
	}
	wait := func(n int) {
		deadline := time.After(60 * time.Second)
		for range n {
			select {
			case <-arrived:
			case <-deadline:
				b.Fatalf("pushes missing after 60 s")
			}
		}
	}
	// Warm up: the HTTP/2 connection, Redis scripts, the consumer.
	send("first", 1, false) // one connection first, then a burst over it
	wait(1)
	send("warm", 200, false)
	wait(200)
	b.ResetTimer()
	send("run", b.N, true)
	wait(b.N)
	b.StopTimer()
	select {
	case <-w.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) != b.N {
		b.Fatalf("%d of %d pushes measured", len(lat), b.N)
	}
	slices.Sort(lat)
	slices.Sort(floor)
	if probes := (b.N + probeEvery - 1) / probeEvery; len(floor) == 0 || len(floor) < probes*9/10 {
		b.Fatalf("%d of %d probes delivered", len(floor), probes)
	}
	q := func(ds []time.Duration, p float64) float64 {
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.50), "p50_ms")
	b.ReportMetric(q(lat, 0.99), "p99_ms")
	b.ReportMetric(q(floor, 0.50), "floor_p50_ms")
	b.ReportMetric(q(floor, 0.99), "floor_p99_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(float64(w.apns.Connections()), "apns_conns")
	b.ReportMetric(0, "ns/op")
}
