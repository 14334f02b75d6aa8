package service

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkStartedToFirstCommand is issue 4's latency: from call.started
// stored in JetStream (the publish acknowledged) to the policy's first
// command (answer) arriving at the gateway's callctl subject, over a real
// nats-server, for calls at a steady rate. Reports p50 and p99.
func BenchmarkStartedToFirstCommand(b *testing.B) {
	runner(b, map[string]string{"default": `call.answer() call.transfer("operator", "XML", "default")`}, func(c *Config) {
		c.PolicyStore = "kv" // production's store: policies in memory, kept by a watch
	})
	nc, err := nats.Connect(natsOf(b).URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var mu sync.Mutex
	published := map[string]time.Time{}
	acked := map[string]time.Time{}
	var fromAck []time.Duration
	var lat []time.Duration
	first := map[string]bool{}
	done := make(chan struct{}, 1)
	answerAll(b, nc, func(id string, cmd map[string]any) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if first[id] {
			return
		}
		first[id] = true
		if t, ok := acked[id]; ok {
			fromAck = append(fromAck, now.Sub(t))
		}
		if t, ok := published[id]; ok {
			lat = append(lat, now.Sub(t))
			select {
			case done <- struct{}{}:
			default:
			}
		}
	})
	const gap = 2 * time.Millisecond // 500 calls/s
	run := time.Now().UnixNano()     // call ids unique across runs: JetStream de-duplicates by event id
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d-%d", run, i)
		mu.Lock()
		published[id] = time.Now()
		mu.Unlock()
		publishStarted(b, js, id, nil)
		mu.Lock()
		acked[id] = time.Now()
		mu.Unlock()
		time.Sleep(gap)
	}
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		if n >= b.N {
			break
		}
		select {
		case <-done:
		case <-deadline:
			b.Fatalf("%d of %d calls reached the gateway", n, b.N)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	// The publish time is taken before the publish: the latency includes
	// JetStream storing the event, as in production.
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	// The same from the moment JetStream acknowledged the event: the
	// runner's own share (a command can beat the acknowledgement to the
	// publisher, so a few are missing here).
	if len(fromAck) > 0 {
		slices.Sort(fromAck)
		b.ReportMetric(float64(fromAck[len(fromAck)*99/100].Microseconds())/1000, "p99_after_ack_ms")
	}
}
