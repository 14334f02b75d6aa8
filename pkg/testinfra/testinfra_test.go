package testinfra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// shared are this package's own Main-started servers; sharedPIDs lets
// TestMain check that Main's Close left no process behind.
var (
	shared     *Servers
	sharedPIDs []int
)

func TestMain(m *testing.M) {
	code := Main(m, &shared, WithNATS, WithRedis)
	if shared != nil {
		for _, pid := range sharedPIDs {
			if !gone(pid) {
				fmt.Fprintf(os.Stderr, "shared server pid %d still running after Main\n", pid)
				code = 1
			}
		}
		for _, dir := range []string{shared.NATS.s.dir, shared.Redis.s.dir} {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(os.Stderr, "shared server directory %s left behind: %v\n", dir, err)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// gone reports whether pid no longer exists. The servers are our children
// and are reaped by Kill and Close, so a zombie does not count as alive.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestMainStartsSharedServers(t *testing.T) {
	ctx := t.Context()
	sharedPIDs = []int{shared.NATS.PID(), shared.Redis.PID()}
	nc, err := nats.Connect(shared.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("shared NATS has no JetStream: %v", err)
	}
	opt, err := redis.ParseURL(shared.Redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("shared Redis: %v", err)
	}
}

// JetStream data and de-duplication survive a SIGKILL and restart, and
// Close leaves neither the process nor its directory behind.
func TestNATSKillRestartKeepsJetStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n, err := StartNATS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	publish := func() *jetstream.PubAck {
		t.Helper()
		nc, err := nats.Connect(n.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, "t.x", []byte("hello"), jetstream.WithMsgID("one"))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	if ack := publish(); ack.Duplicate {
		t.Fatal("first publish reported as a duplicate")
	}
	if ack := publish(); !ack.Duplicate {
		t.Fatal("second publish with the same Nats-Msg-Id was stored again")
	}

	pid := n.PID()
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) || n.PID() != 0 {
		t.Fatalf("pid %d still there after Kill (PID() = %d)", pid, n.PID())
	}
	if nc, err := nats.Connect(n.URL(), nats.Timeout(200*time.Millisecond)); err == nil {
		nc.Close()
		t.Fatal("connected to a killed server")
	}
	if err := n.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}

	port := n.Port()
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Port() != port || n.PID() == 0 || n.PID() == pid {
		t.Fatalf("after restart: port %d (was %d), pid %d (was %d)", n.Port(), port, n.PID(), pid)
	}
	// The de-duplication window is rebuilt from the store.
	if ack := publish(); !ack.Duplicate {
		t.Fatal("after restart a repeated Nats-Msg-Id was stored again")
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("after restart the stream has %d messages, want 1", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil || string(msg.Data) != "hello" {
		t.Fatalf("message 1 after restart: %v %v", msg, err)
	}
	nc.Close()

	pid, dir := n.PID(), n.s.dir
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatal("server still running after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory left behind: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Restart(ctx); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestRedisFlushKillRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := NewRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); v != "v" {
		t.Fatalf("get: %q %v", v, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after flush: %v", err)
	}
	if err := c.Set(ctx, "k", "before kill", 0).Err(); err != nil {
		t.Fatal(err)
	}

	pid := r.PID()
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("pid %d still there after Kill", pid)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered by a killed server")
	}
	if err := r.Flush(ctx); err == nil {
		t.Fatal("Flush of a killed server succeeded")
	}

	port := r.Port()
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Port() != port {
		t.Fatalf("restarted on port %d, was %d", r.Port(), port)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after restart, data from before the kill: %v", err)
	}
	if err := c.Set(ctx, "k", "again", 0).Err(); err != nil {
		t.Fatalf("after restart: %v", err)
	}

	pid, dir := r.PID(), r.s.dir
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatal("server still running after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory left behind: %v", err)
	}
}

func TestMissingBinarySaysHowToInstall(t *testing.T) {
	t.Setenv("SWITCHYARD_NATS_SERVER", "/nonexistent/nats-server")
	t.Setenv("SWITCHYARD_REDIS_SERVER", "/nonexistent/redis-server")
	_, err := StartNATS(t.Context())
	if err == nil || !strings.Contains(err.Error(), `"make setup"`) || !strings.Contains(err.Error(), natsBuildHint) {
		t.Errorf("nats: %v", err)
	}
	_, err = StartRedis(t.Context())
	if err == nil || !strings.Contains(err.Error(), `"sudo apt-get install redis-server"`) {
		t.Errorf("redis: %v", err)
	}
}

// Without the override, nats-server is the repository's bin/nats-server and
// nothing else; outside the repository the error still says what to do.
func TestNATSBinaryIsTheRepositorys(t *testing.T) {
	t.Setenv("SWITCHYARD_NATS_SERVER", "")
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p, err := natsBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "bin", "nats-server"); p != want {
		t.Fatalf("nats-server %s, want %s", p, want)
	}
	t.Chdir(t.TempDir())
	if _, err := natsBinary(); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_NATS_SERVER") || !strings.Contains(err.Error(), natsBuildHint) {
		t.Fatalf("outside the repository: %v", err)
	}
}

// fakeServer writes an executable script standing in for a server binary.
func fakeServer(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-server")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartErrorCarriesServerOutput(t *testing.T) {
	t.Setenv("SWITCHYARD_REDIS_SERVER", fakeServer(t, `echo "fatal: bad config line" >&2; exit 3`))
	_, err := StartRedis(t.Context())
	if err == nil || !strings.Contains(err.Error(), "fatal: bad config line") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("got %v", err)
	}
}

// A server that never serves fails the start at the caller's deadline,
// with its output, and is killed rather than left running.
func TestStartDeadlineKillsWedgedServer(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv("SWITCHYARD_NATS_SERVER", fakeServer(t, `echo $$ > `+pidFile+`; echo "still booting"; exec sleep 60`))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := StartNATS(ctx)
	if err == nil || !strings.Contains(err.Error(), "still booting") || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("start took %v with a 300ms deadline", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 || !gone(pid) {
		t.Fatalf("wedged server (pid %d) left running", pid)
	}
}

// A port taken between the check and the server's bind is given up for
// another one, without waiting on whatever holds it.
func TestStartRetriesTakenPort(t *testing.T) {
	bin, err := redisBinary()
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pick := func() (int, func(), error) {
		picks++
		if picks == 1 {
			return takenPort, func() {}, nil
		}
		return pickPort()
	}
	s := &server{name: "redis-server", bin: bin, ready: redisReady}
	s.args = func(port int) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir}
	}
	start := time.Now()
	if err := newServer(t.Context(), s, pick); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if picks != 2 || s.port == takenPort {
		t.Fatalf("%d picks, port %d (taken: %d)", picks, s.port, takenPort)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

// Reserved ports are not handed out twice, even within one process, and
// are outside the ephemeral range.
func TestPortsReservedAndOutsideEphemeralRange(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	var elo, ehi int
	if _, err := fmt.Sscan(string(b), &elo, &ehi); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 50 {
		p, release, err := pickPort()
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if p >= elo && p <= ehi {
			t.Fatalf("port %d in the ephemeral range %d-%d", p, elo, ehi)
		}
		if seen[p] {
			t.Fatalf("port %d picked twice while reserved", p)
		}
		seen[p] = true
		if again, ok := reservePort(p); ok {
			again()
			t.Fatalf("port %d reserved twice", p)
		}
	}
	p, release, err := pickPort()
	if err != nil {
		t.Fatal(err)
	}
	release()
	again, ok := reservePort(p)
	if !ok {
		t.Fatalf("port %d not reservable after release", p)
	}
	again()
}

// Kill, Restart, PID and URL from several goroutines at once leave one
// working server.
func TestConcurrentKillRestart(t *testing.T) {
	ctx := t.Context()
	r := NewRedis(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 5 {
				if i%2 == 0 {
					r.Kill()
				} else if err := r.Restart(ctx); err != nil {
					t.Error(err)
				}
				_, _ = r.PID(), r.URL()
			}
		})
	}
	wg.Wait()
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c := client(r.Addr())
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

// Readiness wants this server, not whatever else answers on its port.
func TestReadinessChecksIdentity(t *testing.T) {
	ctx := t.Context()
	r, n := shared.Redis, shared.NATS
	if err := redisReady(ctx, r.Addr(), r.PID()); err != nil {
		t.Fatal(err)
	}
	if err := redisReady(ctx, r.Addr(), r.PID()+1); err == nil {
		t.Fatal("redis readiness accepted another pid")
	}
	if err := natsReady(ctx, strings.TrimPrefix(n.URL(), "nats://"), "someone-else"); err == nil {
		t.Fatal("nats readiness accepted another server name")
	}
}

// A restart onto a port that another program took meanwhile fails, saying
// so, instead of handing out that program's address.
func TestRestartOntoTakenPort(t *testing.T) {
	r := NewRedis(t)
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = r.Restart(t.Context())
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("got %v", err)
	}
	ln.Close()
	if err := r.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// FreeAddr's port stays reserved for the whole test, so a child process
// started later can bind it, and no other pick hands it out meanwhile.
func TestFreeAddrReservedUntilTestEnds(t *testing.T) {
	var port int
	t.Run("holder", func(t *testing.T) {
		addr := FreeAddr(t)
		_, ps, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ = strconv.Atoi(ps)
		if release, ok := reservePort(port); ok {
			release()
			t.Fatalf("%s is not reserved while the test runs", addr)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the reserved address cannot be bound: %v", err)
		}
		ln.Close()
	})
	release, ok := reservePort(port)
	if !ok {
		t.Fatalf("port %d still reserved after its test ended", port)
	}
	release()
}
