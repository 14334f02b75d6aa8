package service

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// percentile of sorted durations, in microseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1000
}

// paced runs n calls at rate per second, open loop (each starts on its
// tick whether or not the previous ones finished, as callers would), and
// returns their latencies, sorted.
func paced(b *testing.B, n int, rate float64, call func(i int) error) []time.Duration {
	b.Helper()
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			t0 := time.Now()
			if err := call(i); err != nil {
				errs <- err
			}
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	return lat
}

// benchEnv is a proxy with an uncached Salesforce connector and a warm
// token, and the fake's token for direct calls.
func benchEnv(b *testing.B, cacheTTL int) (*env, string) {
	// The bulkhead is not what is measured: room for bursts when this
	// shared machine stalls.
	e := newEnv(b, func(c *Config) { c.LogLevel, c.MaxInFlightPerOrg, c.MaxPending = "info", 1024, 8192 })
	if status, body, _ := e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(fmt.Sprintf(`,"cache_ttl_seconds":%d,"retries":0`, cacheTTL))); status != 201 {
		b.Fatalf("%d %s", status, body)
	}
	resp, err := http.PostForm(e.sfURL+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"sf-s3cret-value"}})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	if r, _ := e.query(fmt.Sprintf(vipLookup, "+441234", 2000), 3*time.Second); r.Error != nil {
		b.Fatal(r.Error)
	}
	return e, tok.AccessToken
}

// BenchmarkProxyOverhead: the same SOQL look-up at 2,000 queries/s along
// three paths, each for b.N queries, open loop, taking turns:
//
//   - direct: HTTP straight to the fake Salesforce;
//   - nats: a bare NATS responder that makes the same HTTP call — the
//     floor of any NATS-fronted service (transport, nats-server, scheduling);
//   - proxy: connector.query through the connector-proxy (no cache,
//     distinct parameters so nothing is coalesced).
//
// Metrics: p50 and p99 of each, the proxy's p99 minus direct's
// (p99_overhead_us) and minus the NATS floor's (p99_over_nats_us).
//
//	go test -run '^$' -bench ProxyOverhead -benchtime 6000x ./internal/service
func BenchmarkProxyOverhead(b *testing.B) {
	e, token := benchEnv(b, 0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	direct := func(i int) error {
		q := fmt.Sprintf("SELECT Name, Tier__c FROM Account WHERE Phone = '+44%07d'", i)
		req, _ := http.NewRequest("GET", e.sfURL+"/services/data/v62.0/query?q="+url.QueryEscape(q), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("direct: %d %s", resp.StatusCode, body)
		}
		return nil
	}
	floor, err := nats.Connect(servers.NATS.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer floor.Close()
	floor.Subscribe("bench.floor", func(m *nats.Msg) {
		go func() {
			var n int
			fmt.Sscan(string(m.Data), &n)
			if err := direct(n); err != nil {
				m.Respond([]byte(err.Error()))
				return
			}
			m.Respond([]byte("ok"))
		}()
	})
	floor.Flush()
	viaNATS := func(i int) error {
		m, err := e.nc.Request("bench.floor", fmt.Append(nil, i), 5*time.Second)
		if err == nil && string(m.Data) != "ok" {
			err = fmt.Errorf("floor: %s", m.Data)
		}
		return err
	}
	proxied := func(i int) error {
		m, err := e.nc.Request("connector.query", fmt.Appendf(nil, vipLookup, fmt.Sprintf("+44%07d", i), 5000), 6*time.Second)
		if err != nil {
			return err
		}
		var r reply
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Error != nil || r.Source != "upstream" {
			return fmt.Errorf("proxied: %s", m.Data)
		}
		return nil
	}
	for _, f := range []func(int) error{direct, viaNATS, proxied} { // warm connections
		paced(b, 200, 2000, f)
	}
	// The paths take turns in chunks of 500 queries (250 ms), so that a
	// stall of this shared machine falls on all three alike.
	var d, n, p []time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += 500 {
		k := min(500, b.N-done)
		d = append(d, paced(b, k, 2000, func(i int) error { return direct(done + i) })...)
		n = append(n, paced(b, k, 2000, func(i int) error { return viaNATS(done + i) })...)
		p = append(p, paced(b, k, 2000, func(i int) error { return proxied(done + i) })...)
	}
	b.StopTimer()
	for _, l := range [][]time.Duration{d, n, p} {
		slices.Sort(l)
	}
	b.ReportMetric(percentile(d, 0.5), "p50_direct_us")
	b.ReportMetric(percentile(d, 0.99), "p99_direct_us")
	b.ReportMetric(percentile(n, 0.5), "p50_nats_us")
	b.ReportMetric(percentile(n, 0.99), "p99_nats_us")
	b.ReportMetric(percentile(p, 0.5), "p50_proxy_us")
	b.ReportMetric(percentile(p, 0.99), "p99_proxy_us")
	b.ReportMetric(percentile(p, 0.99)-percentile(d, 0.99), "p99_overhead_us")
	b.ReportMetric(percentile(p, 0.99)-percentile(n, 0.99), "p99_over_nats_us")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCacheHitOverNATS: a look-up answered from the cache, end to end
// (request over NATS, reply received), one at a time.
//
//	go test -run '^$' -bench CacheHitOverNATS -benchtime 20000x ./internal/service
func BenchmarkCacheHitOverNATS(b *testing.B) {
	e, _ := benchEnv(b, 300)
	body := fmt.Appendf(nil, vipLookup, "+441234", 2000)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		m, err := e.nc.Request("connector.query", body, time.Second)
		lat[i] = time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			var r reply
			if json.Unmarshal(m.Data, &r); r.Source != "cache" {
				b.Fatalf("not a cache hit: %s", m.Data)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50_us")
	b.ReportMetric(percentile(lat, 0.99), "p99_us")
	b.ReportMetric(percentile(lat, 0.999), "p999_us")
}

// BenchmarkCacheHitOverNATSParallel: cache hits from many callers at once
// (throughput; latency under load).
//
//	go test -run '^$' -bench CacheHitOverNATSParallel ./internal/service
func BenchmarkCacheHitOverNATSParallel(b *testing.B) {
	e, _ := benchEnv(b, 300)
	body := fmt.Appendf(nil, vipLookup, "+441234", 2000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.nc.Request("connector.query", body, time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCacheHitHandling: the proxy's own work for a cache hit —
// decoding and validating the request, the engine, encoding the reply —
// without the NATS round trip.
//
//	go test -run '^$' -bench CacheHitHandling -benchmem ./internal/service
func BenchmarkCacheHitHandling(b *testing.B) {
	e, _ := benchEnv(b, 300)
	body := fmt.Appendf(nil, vipLookup, "+441234", 2000)
	if out := e.svc.nq.Handle(body); !strings.Contains(string(out), `"source":"cache"`) {
		b.Fatalf("not a cache hit: %s", out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e.svc.nq.Handle(body)
	}
}
