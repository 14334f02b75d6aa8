package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// gatewayProc is the esl-gateway running as its own process.
type gatewayProc struct {
	cmd     *exec.Cmd
	socket  string
	admin   string
	token   string
	log     *bytes.Buffer
	exited  chan struct{}
	exitErr error
}

func startGateway(t *testing.T, natsURL, nodes string, extra ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{socket: testinfra.FreeAddr(t), admin: testinfra.FreeAddr(t), token: "e2e-token", log: &bytes.Buffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(filepath.Join(binaries, "esl-gateway"))
	g.cmd.Env = append(os.Environ(),
		"SWITCHYARD_NATS_URL="+natsURL, "SWITCHYARD_ADMIN_TOKEN="+g.token, "SWITCHYARD_GW_SOCKET_ADDR="+g.socket,
		"SWITCHYARD_GW_ADMIN_ADDR="+g.admin, "SWITCHYARD_GW_NODES="+nodes, "SWITCHYARD_GW_INSTANCE=gw-e2e",
		"SWITCHYARD_GW_SHUTDOWN_GRACE=10s", "SWITCHYARD_LOG_LEVEL=warn")
	g.cmd.Env = append(g.cmd.Env, extra...)
	g.cmd.Stdout, g.cmd.Stderr = syncWriter{g.log, &sync.Mutex{}}, syncWriter{g.log, &sync.Mutex{}}
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exitErr = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("esl-gateway log:\n%s", lastLines(g.log.String(), 40))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + g.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("esl-gateway not ready: %v\n%s", err, g.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readCallEvents reads the whole CALLS stream and groups it by call.
func readCallEvents(t *testing.T, url string) map[string][]*events.Envelope {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	cons, err := js.OrderedConsumer(ctx, "CALLS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*events.Envelope{}
	for i := uint64(0); i < info.State.Msgs; i++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading CALLS at %d of %d: %v", i, info.State.Msgs, err)
		}
		e, err := events.Parse(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out[e.CallID] = append(out[e.CallID], e)
	}
	return out
}

// 500 simulated calls through the gateway, driven over NATS as a policy
// would (answer on call.started); NATS is killed and restarted mid-run.
// Every call's events are in JetStream in order, none lost, none twice.
func TestFiveHundredCallsThroughTheGatewayWithNATSRestart(t *testing.T) {
	const calls = 500
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{}) // real time: callers stay about a second
	defer sim.Close()
	fsLn, err := sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, natsSrv.URL(), "fs1="+fsLn.Addr().String()+":ClueCon")
	sim.SetDialplan([]fssim.Route{fssim.SocketRoute(`^8084$`, gw.socket, false, "switchyard_policy=default")})

	// The driver: answers every call it hears of, like a policy.
	nc, err := nats.Connect(natsSrv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Subscribe("calls.*.started", func(m *nats.Msg) {
		e, err := events.Parse(m.Data)
		if err != nil {
			return
		}
		go nc.Request("callctl."+e.CallID, []byte(`{"op":"execute","app":"answer"}`), 5*time.Second)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	chans := make([]*fssim.Channel, 0, calls)
	for i := 0; i < calls; i++ {
		if i == calls/2 {
			if err := natsSrv.Kill(); err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(time.Second)
				natsSrv.Restart(ctx)
			}()
		}
		c, err := sim.PlaceCall(ctx, fssim.CallSpec{
			Destination: "8084", CallerIDNumber: fmt.Sprintf("+44%09d", i), Digits: "12", DigitsAfter: 20 * time.Millisecond,
			HangupAfter: time.Duration(1000+i%5*100) * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, c)
		time.Sleep(8 * time.Millisecond)
	}
	for _, c := range chans {
		select {
		case <-c.Ended:
		case <-ctx.Done():
			t.Fatal("calls did not end")
		}
	}
	// Wait until the gateway has stored everything it holds.
	waitGateway(t, gw, func(r map[string]any) bool {
		d, _ := r["detail"].(map[string]any)
		return d != nil && d["events_pending"] == float64(0) && d["active_sessions"] == float64(0)
	})

	byCall := readCallEvents(t, natsSrv.URL())
	answered := 0
	for _, c := range chans {
		evs := byCall[c.UUID]
		if len(evs) < 2 {
			t.Fatalf("call %s: %d events", c.UUID, len(evs))
		}
		var types []string
		seen := map[string]bool{}
		for _, e := range evs {
			if seen[e.ID] {
				t.Fatalf("call %s: event %s stored twice", c.UUID, e.ID)
			}
			seen[e.ID] = true
			types = append(types, e.Type)
		}
		if types[0] != "call.started" || types[len(types)-1] != "call.hangup" {
			t.Fatalf("call %s: events %v", c.UUID, types)
		}
		for _, typ := range types[1 : len(types)-1] {
			if typ == "call.started" || typ == "call.hangup" || typ == "call.released" {
				t.Fatalf("call %s: events out of order %v", c.UUID, types)
			}
		}
		if types[1] == "call.answered" {
			answered++
			// The caller pressed 1 then 2 once answered.
			if dtmf := strings.Count(strings.Join(types, " "), "call.dtmf"); dtmf != 2 {
				t.Fatalf("call %s: %d call.dtmf events, want 2: %v", c.UUID, dtmf, types)
			}
		}
	}
	if len(byCall) != calls {
		t.Fatalf("%d calls in CALLS, want %d", len(byCall), calls)
	}
	// Most calls were answered over callctl; those placed while NATS was
	// down were handed back and still have their full history.
	if answered < calls/2 {
		t.Fatalf("only %d of %d calls were answered through callctl", answered, calls)
	}
	t.Logf("%d calls, %d answered through callctl", calls, answered)
}

func waitGateway(t *testing.T, gw *gatewayProc, cond func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + gw.admin + "/readyz")
		if err == nil {
			last = map[string]any{}
			json.NewDecoder(resp.Body).Decode(&last)
			resp.Body.Close()
			if cond(last) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway never reached the state; last /readyz: %v", last)
}
