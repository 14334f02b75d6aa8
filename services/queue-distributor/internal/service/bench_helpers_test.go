package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// benchService is a running queue-distributor for a benchmark: its own
// NATS (the streams have fixed names), a prefix of its own in the shared
// Redis, and a stand-in for the gateway on fs.fs1.api that hands every
// originate to the benchmark (timestamped on arrival) and answers other
// api commands +OK.
type benchService struct {
	svc    *Service
	nc     *nats.Conn
	js     jetstream.JetStream
	base   string
	rings  chan ring
	client *http.Client
}

// ring is an originate the gateway received; reply answers it.
type ring struct {
	at            time.Time
	agent, member string
	reply         func(body string) error
}

var benchN int

func newBenchService(b *testing.B) *benchService {
	b.Helper()
	benchN++
	ns := testinfra.NewNATS(b)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	e := &benchService{nc: nc, js: js, rings: make(chan ring, 64),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	sub, err := nc.Subscribe("fs.fs1.api", func(m *nats.Msg) {
		at := time.Now()
		var req struct {
			Command string `json:"command"`
		}
		_ = json.Unmarshal(m.Data, &req)
		if !strings.HasPrefix(req.Command, "originate ") {
			_ = m.Respond([]byte(`{"output":"+OK"}`))
			return
		}
		select {
		case e.rings <- ring{at: at, agent: dialVar(req.Command, "switchyard_agent"), member: dialVar(req.Command, "switchyard_member"),
			reply: func(body string) error { return m.Respond([]byte(body)) }}:
		default:
			_ = m.Respond([]byte(`{"error":{"code":"command_failed","message":"-ERR USER_BUSY","cause":"USER_BUSY"}}`))
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })

	cfg := Config{NATSURL: ns.URL(), RedisURL: servers.Redis.URL(), Prefix: fmt.Sprintf("bench%d:", benchN), AdminAddr: "127.0.0.1:0",
		AdminToken: token, Instance: fmt.Sprint("qd-bench-", benchN), Workers: 4, StatsWindow: 15 * time.Minute, ShutdownGrace: 5 * time.Second}
	e.svc, err = New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.svc.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = e.svc.store.Reset(context.Background())
	})
	e.base = "http://" + e.svc.AdminAddr()
	if err := until(10*time.Second, func() (bool, error) { return e.svc.ready.Load(), nil }); err != nil {
		b.Fatalf("service ready: %v", err)
	}
	return e
}

// dialVar is the value of {name=value} in an originate's dial string.
func dialVar(cmd, name string) string {
	_, rest, ok := strings.Cut(cmd, name+"=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, ",}"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// until polls cond (briefly: the benchmarks wait on it between samples)
// until it holds or timeout passes.
func until(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not within %v", timeout)
			}
			return err
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// parallel runs fn for 0..n-1 on workers goroutines and returns the
// first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// envInt is a benchmark size from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// reportLatency reports the median and 99th percentile of lat.
// reportPercentiles reports name-p50-µs and name-p99-µs (p50-µs and
// p99-µs for name "").
func reportPercentiles(b *testing.B, name string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	if name != "" {
		name += "-"
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), name+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), name+"p99-µs")
}

// reportLatency reports p50-µs, p99-µs and max-µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	reportPercentiles(b, "", lat)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
