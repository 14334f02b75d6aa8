package service

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/apnsfake"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// nats-server killed (SIGKILL) and restarted while pushes are requested
// at 500 a second: every request JetStream acknowledged is pushed exactly
// once — none lost in the crash, none pushed again by the redeliveries
// that follow it — and has exactly one push.sent.
func TestEveryPushSurvivesANATSCrashUnderLoad(t *testing.T) {
	const (
		users    = 20
		requests = 600
		crashAt  = 200 // requests published before the kill
	)
	var mu sync.Mutex
	pushed := map[string]int{} // apns-id → pushes received
	w := newWorldWith(t, apnsfake.Options{OnRequest: func(r apnsfake.Request) {
		mu.Lock()
		pushed[strings.ToLower(r.ApnsID)]++
		mu.Unlock()
	}}, func(c *Config) {
		// A short ack wait: deliveries whose acks the crash lost come
		// back within the test.
		c.RateLimit, c.LogLevel, c.ackWait = 0, "info", 2*time.Second
	})
	n := w.nats
	toks := make([]string, users)
	for i := range toks {
		toks[i] = apnsToken(fmt.Sprint("crash-", i))
		w.register(fmt.Sprint("crash", i), toks[i], domain.IOS, domain.Production)
	}
	// The producer publishes on a connection of its own that reconnects,
	// and retries each request under the same event id until JetStream
	// acknowledges it, as the policy-runner and the distributor do.
	nc, err := bus.Connect(n.URL(), "crash-producer", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprint(time.Now().UnixNano())
	want := map[string]string{} // apns-id → request id
	publish := func(i int) {
		u := i % users
		d := domain.RequestData{RequestID: fmt.Sprintf("crash-%s-%d", run, i), User: fmt.Sprint("crash", u), Type: "voip", CallID: callID}
		e, err := events.New("", "switchyard/test/1", domain.TypeRequested, "push."+d.User+".requested", d.CallID, d)
		if err != nil {
			t.Fatal(err)
		}
		want[strings.ToLower(domain.MessageID(d.RequestID, domain.DeviceID(toks[u])))] = d.RequestID
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := bus.Publish(ctx, js, "push."+d.User+".requested", e)
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d not stored within 30 s: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := range requests {
		<-tick.C
		if i == crashAt {
			if err := n.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := n.Restart(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		publish(i)
	}
	complete := func() (missing, twice []string) {
		mu.Lock()
		defer mu.Unlock()
		for id, req := range want {
			switch c := pushed[id]; {
			case c == 0:
				missing = append(missing, req)
			case c > 1:
				twice = append(twice, fmt.Sprintf("%s ×%d", req, c))
			}
		}
		return missing, twice
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing, twice := complete()
		if len(twice) > 0 {
			t.Fatalf("pushed more than once: %v", twice)
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged requests never pushed, e.g. %v\nlogs:\n%s", len(missing), requests, missing[:min(5, len(missing))], tail(w.logs.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every request has its push.sent once (the redeliveries republish
	// theirs under the same id), and the redeliveries settle too: none
	// stays pushed-but-unreported.
	sent := map[string]int{}
	waitFor(t, 30*time.Second, "a push.sent per request", func() bool {
		clear(sent)
		for u := range users {
			for _, e := range w.events(fmt.Sprint("crash", u), domain.TypeSent) {
				var d domain.SentData
				if err := e.DecodeData(&d); err != nil {
					t.Fatal(err)
				}
				sent[d.RequestID]++
			}
		}
		return len(sent) == requests
	})
	for req, c := range sent {
		if c != 1 {
			t.Errorf("%s: %d push.sent events", req, c)
		}
	}
	t.Logf("duplicates settled without a push: %v; not settled at first: %d",
		w.metric(`switchyard_push_requests_total{outcome="duplicate"}`), strings.Count(w.logs.String(), "not settled"))
	mu.Lock()
	defer mu.Unlock()
	if len(pushed) != requests {
		t.Errorf("%d distinct pushes for %d requests", len(pushed), requests)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
