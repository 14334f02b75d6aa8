package service

import (
	"net"
	"os"
	"os/exec"
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

// echoEnv names the address a child process of the test binary echoes
// back to (TestMain runs echoTo instead of the tests when it is set).
const echoEnv = "SWITCHYARD_BENCH_ECHO_TO"

// echoTo connects to addr and sends back whatever it reads until the
// connection closes.
func echoTo(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(1)
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// BenchmarkLoopbackTCPRoundTrip: one message to another process over
// loopback TCP and back, nothing else — the machine's floor under any
// hop between two processes. A NATS request-reply is at least two of
// them (requester → nats-server → responder and back), so a p99 here
// above half a target makes the target unreachable over NATS.
func BenchmarkLoopbackTCPRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), echoEnv+"="+ln.Addr().String())
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = child.Wait() }()
	c, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg, buf := make([]byte, 128), make([]byte, 128) // about a query's size
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(msg); {
			n, err := c.Read(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50_us")
	b.ReportMetric(percentile(lat, 0.99), "p99_us")
}
