// Command devstack is `make run`: the whole local stack on one machine — a
// real nats-server with JetStream, a real redis-server, the five services
// as their own processes, and the FreeSWITCH simulator placing sample calls
// (half to an IVR policy, half to a queue with three simulated agents), or a
// real FreeSWITCH when FREESWITCH=host:port:password — with a short live
// summary. Ctrl-C stops everything it started.
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

type options struct {
	rate       float64
	duration   time.Duration
	freeswitch string
	logDir     string
}

func run(ctx context.Context) error {
	var o options
	flag.Float64Var(&o.rate, "rate", 2, "sample calls per second placed by the simulator (env DEVSTACK_RATE)")
	flag.DurationVar(&o.duration, "for", 0, "stop after this long (0: until Ctrl-C) (env DEVSTACK_FOR)")
	flag.StringVar(&o.logDir, "logs", "", "directory for the services' logs (default: a new temporary one)")
	flag.Parse()
	if v := os.Getenv("DEVSTACK_RATE"); v != "" {
		fmt.Sscan(v, &o.rate)
	}
	if v := os.Getenv("DEVSTACK_FOR"); v != "" {
		o.duration, _ = time.ParseDuration(v)
	}
	o.freeswitch = os.Getenv("FREESWITCH")
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	root, err := testinfra.RepoRoot()
	if err != nil {
		return err
	}
	if o.logDir == "" {
		if o.logDir, err = os.MkdirTemp("", "switchyard-devstack-"); err != nil {
			return err
		}
	}

	say("starting nats-server (JetStream) and redis-server")
	natsSrv, err := testinfra.StartNATS(ctx)
	if err != nil {
		return err
	}
	defer natsSrv.Close()
	redisSrv, err := testinfra.StartRedis(ctx)
	if err != nil {
		return err
	}
	defer redisSrv.Close()
	token := randomToken()

	// FreeSWITCH: the simulator, or the real one named by FREESWITCH.
	socketAddr := freeAddr("127.0.0.1:8084")
	var sim *fssim.Sim
	nodes := ""
	if o.freeswitch != "" {
		parts := strings.SplitN(o.freeswitch, ":", 3)
		if len(parts) < 2 {
			return fmt.Errorf("FREESWITCH=%q: want host:port[:password]", o.freeswitch)
		}
		nodes = "fs1=" + o.freeswitch
		say("using the real FreeSWITCH at %s:%s; its dialplan must `socket %s async full`", parts[0], parts[1], socketAddr)
	} else {
		// 8084 goes to Switchyard; the route table sends it to the IVR menu
		// policy, whose choices land back in the simulator's dialplan.
		sim = fssim.New(fssim.Options{Hostname: "fs1", Dialplan: append([]fssim.Route{fssim.SocketRoute(`^8084$`, socketAddr, true),
			fssim.SocketRoute(`^8087$`, socketAddr, true)}, fssim.DefaultDialplan(socketAddr)[1:]...)})
		defer sim.Close()
		ln, err := sim.ListenInbound(freeAddr("127.0.0.1:8021"))
		if err != nil {
			return err
		}
		nodes = "fs1=" + ln.Addr().String() + ":ClueCon"
		say("FreeSWITCH simulator: event socket %s, dialplan hands 8084 to %s", ln.Addr(), socketAddr)
	}

	say("building the services")
	bins := map[string]string{}
	for _, name := range []string{"esl-gateway", "policy-runner", "queue-distributor", "connector-proxy", "push-notifier"} {
		bins[name] = filepath.Join(root, "bin", name)
		build := exec.CommandContext(ctx, "go", "build", "-o", bins[name], "./services/"+name)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	// Each service with its admin address and settings; every one gets
	// NATS, Redis and the token (a service ignores what it does not use).
	specs := []struct {
		name, addr, adminEnv string
		env                  []string
	}{
		{"esl-gateway", "127.0.0.1:9101", "SWITCHYARD_GW_ADMIN_ADDR", []string{"SWITCHYARD_GW_SOCKET_ADDR=" + socketAddr,
			"SWITCHYARD_GW_NODES=" + nodes, "SWITCHYARD_GW_INSTANCE=gw-dev", "SWITCHYARD_GW_SHUTDOWN_GRACE=5s"}},
		{"policy-runner", "127.0.0.1:9102", "SWITCHYARD_PR_ADMIN_ADDR", []string{"SWITCHYARD_PR_POLICIES=" + filepath.Join(root, "lua", "policies"),
			"SWITCHYARD_PR_LIB=" + filepath.Join(root, "lua", "lib"), "SWITCHYARD_PR_ROUTES=8084=ivr_menu,8087=queue_support"}},
		{"queue-distributor", "127.0.0.1:9103", "SWITCHYARD_QD_ADMIN_ADDR", []string{"SWITCHYARD_QD_INSTANCE=qd-dev", "SWITCHYARD_QD_SHUTDOWN_GRACE=5s"}},
		{"connector-proxy", "127.0.0.1:9104", "SWITCHYARD_CP_ADMIN_ADDR", []string{"SWITCHYARD_CP_INSTANCE=cp-dev"}},
		{"push-notifier", "127.0.0.1:9105", "SWITCHYARD_PUSH_ADMIN_ADDR", []string{"SWITCHYARD_PUSH_INSTANCE=pn-dev"}},
	}
	common := []string{"SWITCHYARD_NATS_URL=" + natsSrv.URL(), "SWITCHYARD_REDIS_URL=" + redisSrv.URL(), "SWITCHYARD_ADMIN_TOKEN=" + token}
	admin := map[string]string{}
	running := map[string]*service{}
	for _, sp := range specs {
		admin[sp.name] = freeAddr(sp.addr)
		svc, err := startService(bins[sp.name], filepath.Join(o.logDir, sp.name+".log"),
			slices.Concat(common, []string{sp.adminEnv + "=" + admin[sp.name]}, sp.env))
		if err != nil {
			return err
		}
		defer svc.stop()
		running[sp.name] = svc
	}
	gw := running["esl-gateway"]
	adminAddr, prAdmin, qdAdmin, cpAdmin, pnAdmin := admin["esl-gateway"], admin["policy-runner"], admin["queue-distributor"], admin["connector-proxy"], admin["push-notifier"]
	if sim != nil {
		if err := sampleQueue(ctx, sim, "http://"+qdAdmin, token); err != nil {
			return fmt.Errorf("set up the sample queue: %w", err)
		}
	}

	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	var st stats
	// Counted for the summary: call events, queue members' events, policy outcomes.
	for _, subject := range []string{"calls.>", "queues.*.member.>", "policies.>"} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if e, err := events.Parse(m.Data); err == nil {
				st.count(e.Type)
			}
		})
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}

	fmt.Printf(`
Switchyard dev stack is up (admin token %s).
  NATS              %s
  Redis             %s
  esl-gateway       socket %s, admin http://%s
                    try: curl -H 'Authorization: Bearer %s' http://%s/v1/calls
  policy-runner     admin http://%s — 8084 runs lua/policies/ivr_menu.lua (callers press 1 or 2),
                    8087 runs lua/policies/queue_support.lua (queue "support", agents 1001-1003)
  queue-distributor admin http://%s — wallboard: http://%s/wallboard#token=%s
  connector-proxy   admin http://%s — no connectors yet: PUT /v1/connectors/{org}/{name}
  push-notifier     admin http://%s — no APNs/FCM credentials: pushes fail no_provider
  logs              %s
Ctrl-C stops everything.

`, token, natsSrv.URL(), redisSrv.URL(), socketAddr, adminAddr, token, adminAddr, prAdmin, qdAdmin, qdAdmin, token, cpAdmin, pnAdmin, o.logDir)

	var wg sync.WaitGroup
	if sim != nil && o.rate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); placeCalls(ctx, sim, o.rate, &st) }()
	}
	summary(ctx, &st, gw)
	wg.Wait()
	fmt.Println()
	fmt.Println("final:", st.line())
	say("stopping")
	return nil
}

// placeCalls is a stream of sample callers: they press a digit or two and
// hang up after a few seconds.
func placeCalls(ctx context.Context, sim *fssim.Sim, rate float64, st *stats) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dest := "8084"
		if i%2 == 0 {
			dest = "8087" // the queue: an agent answers, the caller hangs up a few seconds later
		}
		_, err := sim.PlaceCall(ctx, fssim.CallSpec{
			Destination: dest, CallerIDNumber: fmt.Sprintf("+4420%08d", i), CallerIDName: "Caller " + fmt.Sprint(i),
			Digits: fmt.Sprint(1 + i%3), DigitsAfter: 1500 * time.Millisecond, HangupAfter: time.Duration(4+rand.IntN(4)) * time.Second,
		})
		if err == nil {
			st.placed.Add(1)
		}
	}
}

type stats struct {
	placed atomic.Int64
	mu     sync.Mutex
	byType map[string]int
}

func (s *stats) count(typ string) {
	s.mu.Lock()
	if s.byType == nil {
		s.byType = map[string]int{}
	}
	s.byType[typ]++
	s.mu.Unlock()
}

func (s *stats) line() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("calls placed %d | started %d answered %d dtmf %d hangup %d released %d | policies ok %d failed %d | queue joined %d answered %d abandoned %d",
		s.placed.Load(), s.byType["call.started"], s.byType["call.answered"], s.byType["call.dtmf"],
		s.byType["call.hangup"], s.byType["call.released"], s.byType["policy.completed"], s.byType["policy.failed"],
		s.byType["queue.member.joined"], s.byType["queue.member.answered"], s.byType["queue.member.abandoned"])
}

// summary prints one status line a second, in place on a terminal.
func summary(ctx context.Context, st *stats, gw *service) {
	tty := isTTY()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-gw.exited:
			fmt.Println()
			say("esl-gateway exited; see its log")
			return
		case <-t.C:
		}
		if tty {
			fmt.Printf("\r\033[K%s", st.line())
		} else if n%5 == 0 {
			fmt.Println(st.line())
		}
	}
}

func isTTY() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// service is a child process that gets SIGTERM, then SIGKILL.
type service struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startService(bin, logPath string, env []string) (*service, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &service{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(s.exited) }()
	return s, nil
}

func (s *service) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// freeAddr is addr when it is free, else a free port on the same host.
func freeAddr(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return addr
		}
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomToken() string {
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func say(format string, args ...any) {
	fmt.Printf("devstack: "+format+"\n", args...)
}

// sampleQueue makes queue "support" with three simulated agents (their
// phones answer after two seconds) logged in, through the
// queue-distributor's admin REST once it is ready.
func sampleQueue(ctx context.Context, sim *fssim.Sim, base, token string) error {
	do := func(method, path string, body string) error {
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue-distributor not ready after 30 s (its log says why)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := do("PUT", "/v1/queues/support", `{"strategy":"longest-idle-agent","wrap_up_seconds":2,"max_wait_seconds":60}`); err != nil {
		return err
	}
	for i, a := range []string{"1001", "1002", "1003"} {
		sim.SetEndpoint("user/"+a, fssim.Endpoint{AnswerAfter: 2 * time.Second})
		if err := do("PUT", "/v1/agents/"+a, `{"contact":"user/`+a+`","ring_timeout_seconds":15}`); err != nil {
			return err
		}
		if err := do("PUT", "/v1/queues/support/tiers/"+a, fmt.Sprintf(`{"level":1,"position":%d}`, i+1)); err != nil {
			return err
		}
		if err := do("POST", "/v1/agents/"+a+"/login", ""); err != nil {
			return err
		}
	}
	return nil
}
