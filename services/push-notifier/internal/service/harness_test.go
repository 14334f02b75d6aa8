package service

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/apnsfake"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fcmfake"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) {
	os.Exit(testinfra.Main(m, &infra, testinfra.WithRedis))
}

const (
	keyID  = "ABC123DEFG"
	teamID = "TEAM123456"
	bundle = "com.switchyard.agent"
	token  = "test-admin-token"
)

// world is one test's push-notifier with its fakes.
type world struct {
	t       testing.TB
	apns    *apnsfake.Server // production
	sandbox *apnsfake.Server
	fcm     *fcmfake.Server
	nats    *testinfra.NATS
	cfg     Config
	svc     *Service
	stop    func()
	js      jetstream.JetStream
	nc      *nats.Conn
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newWorld starts fakes of APNs (production and sandbox, token auth) and
// FCM, a nats-server, and a push-notifier against them and the package's
// Redis with a key prefix of its own; mod adjusts the config.
func newWorld(t testing.TB, mod func(c *Config)) *world {
	return newWorldWith(t, apnsfake.Options{}, mod)
}

// newWorldWith is newWorld with options for the production APNs fake.
func newWorldWith(t testing.TB, opts apnsfake.Options, mod func(c *Config)) *world {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	p8 := filepath.Join(dir, "AuthKey.p8")
	write(t, p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	w := &world{t: t, logs: &syncBuffer{}, nats: testinfra.NewNATS(t)}
	var err error
	for i, s := range []**apnsfake.Server{&w.apns, &w.sandbox} {
		o := opts
		if i == 1 {
			o = apnsfake.Options{}
		}
		if *s, err = apnsfake.Start(o); err != nil {
			t.Fatal(err)
		}
		(*s).AddKey(keyID, teamID, &key.PublicKey)
		t.Cleanup(func() { (*s).Close() })
	}
	w.fcm = fcmfake.Start()
	t.Cleanup(w.fcm.Close)
	sa, err := w.fcm.NewServiceAccount("switchyard-test")
	if err != nil {
		t.Fatal(err)
	}
	saFile := filepath.Join(dir, "sa.json")
	write(t, saFile, sa)
	ca := filepath.Join(dir, "ca.pem")
	write(t, ca, append(append(w.apns.CertPEM(), w.sandbox.CertPEM()...), w.fcm.CertPEM()...))

	w.cfg = Config{
		// A nats-server and a key prefix of the world's own: nothing
		// one test leaves (a message handed back, a request's record,
		// ephemeral consumers) reaches another, or the same test run
		// again (-count).
		NATSURL: w.nats.URL(), RedisURL: infra.Redis.URL(), Prefix: fmt.Sprintf("t:%s:%d:", t.Name(), time.Now().UnixNano()),
		AdminAddr: "127.0.0.1:0", AdminToken: token, Instance: "test-" + strings.ReplaceAll(t.Name(), "/", "-"), Workers: 16,
		ShutdownGrace: 5 * time.Second, LogLevel: "debug",
		AttemptTimeout: 2 * time.Second, MaxRetryWindow: time.Minute, VoIPTTL: 30 * time.Second, AlertTTL: time.Hour,
		RateLimit: 100, RateWindow: time.Minute, MaxDevices: 16, MaxDeliver: 10,
	}
	w.cfg.APNs.KeyFile, w.cfg.APNs.KeyID, w.cfg.APNs.TeamID = p8, keyID, teamID
	w.cfg.APNs.ProductionURL, w.cfg.APNs.SandboxURL, w.cfg.APNs.CAFile = w.apns.URL(), w.sandbox.URL(), ca
	w.cfg.FCM.CredentialsFile, w.cfg.FCM.URL, w.cfg.FCM.CAFile = saFile, w.fcm.URL(), ca
	if mod != nil {
		mod(&w.cfg)
	}
	if w.nc, err = nats.Connect(w.cfg.NATSURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	w.start()
	return w
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the service until stop (or the test's end) and waits for
// /readyz.
func (w *world) start() {
	t := w.t
	t.Helper()
	var level slog.Level
	if err := level.UnmarshalText([]byte(w.cfg.LogLevel)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: level}))
	svc, err := New(w.cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return 30 s after cancel")
			}
		})
	}
	t.Cleanup(w.stop)
	waitFor(t, 15*time.Second, "readyz", func() bool {
		resp, err := http.Get("http://" + svc.AdminAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// api calls the admin REST API.
func (w *world) api(method, path string, body any) (int, map[string]any) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+w.svc.AdminAddr()+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (w *world) register(user, tok, platform, env string) {
	w.t.Helper()
	st, body := w.api(http.MethodPut, "/v1/users/"+user+"/devices/"+tok, map[string]string{"platform": platform, "environment": env, "bundle": bundle})
	if st != http.StatusCreated && st != http.StatusOK {
		w.t.Fatalf("register %s: %d %v", tok, st, body)
	}
}

// request publishes a push.requested the way the policy-runner and the
// queue-distributor do; a fresh event id each time.
func (w *world) request(d domain.RequestData) *events.Envelope {
	w.t.Helper()
	e, err := events.New("", "switchyard/test/1", domain.TypeRequested, "push."+d.User+".requested", d.CallID, d)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bus.Publish(ctx, w.js, "push."+d.User+".requested", e); err != nil {
		w.t.Fatal(err)
	}
	return e
}

// events returns the PUSH events of user with type typ (all if "").
func (w *world) events(user, typ string) []*events.Envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := w.js.OrderedConsumer(ctx, "PUSH", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"push." + user + ".>"}})
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []*events.Envelope
	n := info.NumPending
	for n > 0 {
		batch, err := c.FetchNoWait(int(n))
		if err != nil {
			w.t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := events.Parse(m.Data())
			if err != nil {
				w.t.Fatalf("unparseable event on %s: %v", m.Subject(), err)
			}
			if typ == "" || e.Type == typ {
				out = append(out, e)
			}
		}
		if got == 0 {
			break
		}
		n -= uint64(got)
	}
	return out
}

// waitEvent waits for an event of typ for user and decodes its data.
func (w *world) waitEvent(user, typ string, data any) *events.Envelope {
	w.t.Helper()
	var got *events.Envelope
	waitFor(w.t, 15*time.Second, typ+" for "+user, func() bool {
		es := w.events(user, typ)
		if len(es) > 0 {
			got = es[0]
		}
		return got != nil
	})
	if data != nil {
		if err := got.DecodeData(data); err != nil {
			w.t.Fatal(err)
		}
	}
	return got
}

// metric reads one sample of /metrics, e.g.
// `switchyard_push_requests_total{outcome="duplicate"}`.
func (w *world) metric(sample string) float64 {
	w.t.Helper()
	resp, err := http.Get("http://" + w.svc.AdminAddr() + "/metrics")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// apnsToken makes a distinct 64-hex-digit device token.
func apnsToken(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}
