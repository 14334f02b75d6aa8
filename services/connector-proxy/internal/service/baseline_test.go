package service

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkNATSRequestBaseline: request-reply to a responder that answers
// at once, the floor under any connector.query.
func BenchmarkNATSRequestBaseline(b *testing.B) {
	nc, err := nats.Connect(servers.NATS.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	srv, err := nats.Connect(servers.NATS.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	reply := []byte(`{"result":{"records":[{"Name":"Acme","Tier__c":"VIP"}],"total_size":1,"done":true},"source":"cache","took_ms":0.01}`)
	srv.Subscribe("bench.echo", func(m *nats.Msg) { m.Respond(reply) })
	srv.Flush()
	body := []byte(`{"org":"acme","connector":"sf","query":"SELECT Name, Tier__c FROM Account WHERE Phone = :phone","params":{"phone":"+441234"},"timeout_ms":2000}`)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := nc.Request("bench.echo", body, time.Second); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50_us")
	b.ReportMetric(percentile(lat, 0.99), "p99_us")
}
