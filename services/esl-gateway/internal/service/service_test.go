package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/esl/esltest"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/app"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS)) }

const token = "test-token"

// gateway starts a gateway on free ports against natsURL and stops it when
// the test ends.
func gateway(t testing.TB, natsURL string, mutate func(*Config)) *Service {
	t.Helper()
	cfg := Config{
		SocketAddr: "127.0.0.1:0", SocketAllow: []string{"127.0.0.0/8"}, MaxSessions: 100, ConnectTimeout: 5 * time.Second,
		NATSURL: natsURL, Nodes: nil, NodePassword: "ClueCon", APIAllow: strings.Split(DefaultAPIAllow, ","),
		AdminAddr: "127.0.0.1:0", AdminToken: token, Instance: "gw-test", ShutdownGrace: 5 * time.Second,
		MaxFrameBytes: 1 << 20, LogLevel: "info",
	}
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	svc, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	waitFor(t, 10*time.Second, func() bool { return svc.streams.Load() })
	return svc
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func natsConn(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return nc, js
}

// callEvents reads every event stored for one call, in stream order.
func callEvents(t *testing.T, js jetstream.JetStream, callID string, want int) []*events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "CALLS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"calls." + callID + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Envelope
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), want, err)
		}
		env, err := events.Parse(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func callctl(t *testing.T, nc *nats.Conn, callID string, cmd app.Command) app.Reply {
	t.Helper()
	r, err := request(nc, callID, cmd)
	if err != nil {
		t.Fatalf("callctl %s: %v", cmd.Op, err)
	}
	return r
}

// request is callctl for goroutines that must not call t.Fatal.
func request(nc *nats.Conn, callID string, cmd app.Command) (app.Reply, error) {
	body, _ := json.Marshal(cmd)
	msg, err := nc.Request("callctl."+callID, body, 10*time.Second)
	if err != nil {
		return app.Reply{}, err
	}
	var r app.Reply
	err = json.Unmarshal(msg.Data, &r)
	return r, err
}

// A real FreeSWITCH async-full session, replayed byte for byte, driven over
// NATS the way a policy drives a call; its events land in JetStream in
// order.
func TestSocketCallDrivenOverNATS(t *testing.T) {
	svc := gateway(t, infra.NATS.URL(), nil)
	nc, js := natsConn(t, infra.NATS.URL())
	const callID = "ecfdcace-7879-4df8-8ff8-78cb02e4a8c8"

	rp := esltest.New(t, "outbound/01-async-full-session")
	rp.Dial(svc.SocketAddr())
	waitFor(t, 5*time.Second, func() bool { return svc.gw.ActiveSessions() == 1 })
	if code, out := rest(t, svc, "GET", "/v1/calls", ""); code != 200 || !strings.Contains(fmt.Sprint(out["calls"]), callID) {
		t.Fatalf("GET /v1/calls while the call is live: %d %v", code, out)
	}

	steps := []struct {
		cmd      app.Command
		response string
	}{
		{app.Command{Op: "execute", App: "answer"}, "_none_"},
		{app.Command{Op: "execute", App: "playback", Arg: "tone_stream://%(500,0,440)", Lock: true}, "FILE PLAYED"},
		{app.Command{Op: "execute", App: "playback", Arg: "/nonexistent/file.wav"}, "FILE NOT FOUND"},
	}
	for _, s := range steps {
		r := callctl(t, nc, callID, s.cmd)
		if !r.OK || r.Result.Response != s.response {
			t.Fatalf("%s %s: %+v %+v", s.cmd.App, s.cmd.Arg, r.Result, r.Error)
		}
	}
	digits := make(chan app.Reply, 1)
	go func() {
		r, err := request(nc, callID, app.Command{Op: "execute", App: "play_and_get_digits",
			Arg: `1 3 1 2000 # tone_stream://%(100,0,350) silence_stream://250 digits \d+`, Vars: []string{"digits"}})
		if err != nil {
			r.Error = &app.ReplyError{Code: "request", Message: err.Error()}
		}
		digits <- r
	}()
	waitFor(t, 5*time.Second, func() bool { return rp.Received() >= 7 })
	r := callctl(t, nc, callID, app.Command{Op: "get", Name: "switchyard_policy"})
	if !r.OK || r.Result.Value == nil || *r.Result.Value != "default" {
		t.Fatalf("get: %+v %+v", r.Result, r.Error)
	}
	r = callctl(t, nc, callID, app.Command{Op: "execute", App: "set", Arg: "switchyard_test=yes", Lock: true})
	if !r.OK {
		t.Fatalf("set: %+v", r.Error)
	}
	go request(nc, callID, app.Command{Op: "execute", App: "hangup", Arg: "NORMAL_CLEARING", TimeoutMS: 2000})
	if d := <-digits; !d.OK || d.Result.Response != "_none_" {
		t.Fatalf("play_and_get_digits: %+v %+v", d.Result, d.Error)
	}
	rp.Wait()

	evs := callEvents(t, js, callID, 3)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.CallID != callID || e.Source != "switchyard/esl-gateway/gw-test" {
			t.Errorf("envelope %+v", e)
		}
	}
	if strings.Join(types, " ") != "call.started call.answered call.hangup" {
		t.Fatalf("events %v", types)
	}
	var started struct {
		CallerIDNumber string            `json:"caller_id_number"`
		Variables      map[string]string `json:"variables"`
		SocketMode     string            `json:"socket_mode"`
	}
	evs[0].DecodeData(&started)
	if started.CallerIDNumber != "+441234567890" || started.Variables["switchyard_policy"] != "default" || started.SocketMode != "async" {
		t.Fatalf("call.started data %+v", started)
	}
	var hangup struct {
		Cause      string `json:"cause"`
		DurationMS int    `json:"duration_ms"`
	}
	evs[2].DecodeData(&hangup)
	if hangup.Cause != "MANAGER_REQUEST" || hangup.DurationMS != 6040 {
		t.Fatalf("call.hangup data %+v", hangup)
	}

	// The call is gone: a request gets a clear error at once, not a timeout.
	waitFor(t, 5*time.Second, func() bool { return svc.gw.ActiveSessions() == 0 })
	start := time.Now()
	_, err := nc.Request("callctl."+callID, []byte(`{"op":"execute","app":"answer"}`), 5*time.Second)
	if err != nats.ErrNoResponders || time.Since(start) > time.Second {
		t.Fatalf("request for a gone call: %v after %v", err, time.Since(start))
	}
}

func TestCallctlRejectsBadRequests(t *testing.T) {
	svc := gateway(t, infra.NATS.URL(), nil)
	nc, _ := natsConn(t, infra.NATS.URL())
	const callID = "ecfdcace-7879-4df8-8ff8-78cb02e4a8c8"
	rp := esltest.New(t, "outbound/01-async-full-session")
	rp.Dial(svc.SocketAddr())
	waitFor(t, 5*time.Second, func() bool { return svc.gw.ActiveSessions() == 1 })
	// The gateway subscribes callctl.<uuid> on its own connection before
	// it publishes call.started (so a policy reacting to it is served);
	// this test has no call.started to wait for, so it waits for the
	// subscription to reach the server.
	waitFor(t, 5*time.Second, func() bool {
		_, err := nc.Request("callctl."+callID, []byte(`not json`), time.Second)
		return err != nats.ErrNoResponders
	})
	for _, raw := range []string{
		`not json`,
		`{"op":"format_disk"}`,
		`{"op":"execute"}`,
		`{"op":"execute","app":"playback","arg":"a\n\napi hupall"}`,
		`{"op":"execute","app":"Play Back"}`,
		`{"op":"hangup","cause":"normal clearing"}`,
		`{"op":"get","name":""}`,
		`{"op":"bridge"}`,
		`{"op":"execute","app":"answer","unknown":1}`,
		`{"op":"execute","app":"answer","arg":"` + strings.Repeat("x", app.MaxArgBytes+1) + `"}`,
	} {
		msg, err := nc.Request("callctl."+callID, []byte(raw), 5*time.Second)
		if err != nil {
			t.Fatalf("%.40q: %v", raw, err)
		}
		var r app.Reply
		json.Unmarshal(msg.Data, &r)
		if r.OK || r.Error == nil || r.Error.Code != "invalid_request" {
			t.Errorf("%.40q: %s", raw, msg.Data)
		}
	}
	// The session is untouched by all that: the recorded call still runs.
	if r := callctl(t, nc, callID, app.Command{Op: "execute", App: "answer"}); !r.OK {
		t.Fatalf("answer after bad requests: %+v", r.Error)
	}
}

func TestAdminAPIAndProbes(t *testing.T) {
	svc := gateway(t, infra.NATS.URL(), nil)
	base := "http://" + svc.AdminAddr()
	get := func(path, tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, body := get("/readyz", ""); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz %d %v", code, body)
	}
	if code, _ := get("/v1/calls", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, body := get("/v1/calls", token); code != 200 || body["calls"] == nil {
		t.Fatalf("calls %d %v", code, body)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"switchyard_gateway_active_sessions", "switchyard_gateway_events_pending"} {
		if !strings.Contains(string(b), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func mustMatch(s string) *regexp.Regexp { return regexp.MustCompile(s) }
