// Command devstack is `make run`: the whole local stack on one machine — a
// real nats-server with JetStream, a real redis-server, the services built
// so far as their own processes, and the FreeSWITCH simulator placing
// sample calls (or a real FreeSWITCH when FREESWITCH=host:port:password) —
// with a short live summary. Ctrl-C stops everything it started.
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
		sim = fssim.New(fssim.Options{Hostname: "fs1", Dialplan: append([]fssim.Route{fssim.SocketRoute(`^8084$`, socketAddr, true)},
			fssim.DefaultDialplan(socketAddr)[1:]...)})
		defer sim.Close()
		ln, err := sim.ListenInbound(freeAddr("127.0.0.1:8021"))
		if err != nil {
			return err
		}
		nodes = "fs1=" + ln.Addr().String() + ":ClueCon"
		say("FreeSWITCH simulator: event socket %s, dialplan hands 8084 to %s", ln.Addr(), socketAddr)
	}

	say("building and starting esl-gateway")
	gwBin := filepath.Join(root, "bin", "esl-gateway")
	build := exec.CommandContext(ctx, "go", "build", "-o", gwBin, "./services/esl-gateway")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build esl-gateway: %v\n%s", err, out)
	}
	adminAddr := freeAddr("127.0.0.1:9101")
	prBin := filepath.Join(root, "bin", "policy-runner")
	buildPR := exec.CommandContext(ctx, "go", "build", "-o", prBin, "./services/policy-runner")
	buildPR.Dir = root
	if out, err := buildPR.CombinedOutput(); err != nil {
		return fmt.Errorf("build policy-runner: %v\n%s", err, out)
	}
	gw, err := startService(gwBin, filepath.Join(o.logDir, "esl-gateway.log"), []string{
		"SWITCHYARD_NATS_URL=" + natsSrv.URL(),
		"SWITCHYARD_ADMIN_TOKEN=" + token,
		"SWITCHYARD_GW_SOCKET_ADDR=" + socketAddr,
		"SWITCHYARD_GW_ADMIN_ADDR=" + adminAddr,
		"SWITCHYARD_GW_NODES=" + nodes,
		"SWITCHYARD_GW_INSTANCE=gw-dev",
		"SWITCHYARD_GW_SHUTDOWN_GRACE=5s",
	})
	if err != nil {
		return err
	}
	defer gw.stop()
	prAdmin := freeAddr("127.0.0.1:9102")
	pr, err := startService(prBin, filepath.Join(o.logDir, "policy-runner.log"), []string{
		"SWITCHYARD_NATS_URL=" + natsSrv.URL(),
		"SWITCHYARD_ADMIN_TOKEN=" + token,
		"SWITCHYARD_PR_ADMIN_ADDR=" + prAdmin,
		"SWITCHYARD_PR_POLICIES=" + filepath.Join(root, "lua", "policies"),
		"SWITCHYARD_PR_LIB=" + filepath.Join(root, "lua", "lib"),
		"SWITCHYARD_PR_ROUTES=8084=ivr_menu",
	})
	if err != nil {
		return err
	}
	defer pr.stop()

	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	var st stats
	sub, err := nc.Subscribe("calls.>", func(m *nats.Msg) {
		if e, err := events.Parse(m.Data); err == nil {
			st.count(e.Type)
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	psub, err := nc.Subscribe("policies.>", func(m *nats.Msg) {
		if e, err := events.Parse(m.Data); err == nil {
			st.count(e.Type)
		}
	})
	if err != nil {
		return err
	}
	defer psub.Unsubscribe()

	fmt.Printf(`
Switchyard dev stack is up.
  NATS          %s
  Redis         %s
  esl-gateway   socket %s, admin http://%s  (token %s)
                try: curl -H 'Authorization: Bearer %s' http://%s/v1/calls
  policy-runner admin http://%s — 8084 runs lua/policies/ivr_menu.lua (callers press 1 or 2)
  logs          %s
  not yet built queue-distributor, connector-proxy, push-notifier
Ctrl-C stops everything.

`, natsSrv.URL(), redisSrv.URL(), socketAddr, adminAddr, token, token, adminAddr, prAdmin, o.logDir)

	var wg sync.WaitGroup
	if sim != nil && o.rate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); placeCalls(ctx, sim, o.rate, &st) }()
	}
	summary(ctx, &st, gw)
	wg.Wait()
	fmt.Println()
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
		_, err := sim.PlaceCall(ctx, fssim.CallSpec{
			Destination: "8084", CallerIDNumber: fmt.Sprintf("+4420%08d", i), CallerIDName: "Caller " + fmt.Sprint(i),
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
	return fmt.Sprintf("calls placed %d | started %d answered %d dtmf %d hangup %d released %d | policies ok %d failed %d",
		s.placed.Load(), s.byType["call.started"], s.byType["call.answered"], s.byType["call.dtmf"],
		s.byType["call.hangup"], s.byType["call.released"], s.byType["policy.completed"], s.byType["policy.failed"])
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
