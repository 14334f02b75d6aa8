// Package testinfra gives tests real infrastructure: a real nats-server with
// JetStream and a real redis-server, each its own OS process on a free
// loopback port with its own temporary directory. There are no fakes, so
// reliability tests can do to these servers what production does to them:
// SIGKILL them, restart them, flush them.
//
// One set of servers per test package is the usual pattern. Main starts
// them before the package's tests and stops them after:
//
//	var infra *testinfra.Servers
//
//	func TestMain(m *testing.M) {
//		os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS, testinfra.WithRedis))
//	}
//
//	func TestRouting(t *testing.T) {
//		nc, err := nats.Connect(infra.NATS.URL())
//		...
//		rdb := redis.NewClient(&redis.Options{Addr: infra.Redis.Addr()})
//		...
//	}
//
// Shared servers stay up for the whole package. A test that kills,
// restarts or flushes a server starts its own, which is closed when the
// test ends:
//
//	func TestSurvivesNATSCrash(t *testing.T) {
//		srv := testinfra.NewNATS(t)
//		...
//		srv.Kill()       // SIGKILL, as a crash would
//		srv.Restart(ctx) // same port, same JetStream store
//		...
//	}
//
// StartNATS and StartRedis do the same without a testing.TB, for TestMain
// or for programs such as the dev stack; the caller must Close what they
// return.
//
// # Binaries
//
// redis-server comes from the Debian package: $SWITCHYARD_REDIS_SERVER,
// else PATH, else /usr/bin, /usr/sbin, /usr/local/bin. nats-server is the
// one "make setup" builds from the version pinned in pkg/go.mod:
// $SWITCHYARD_NATS_SERVER, else bin/nats-server under RepoRoot. A
// nats-server on PATH is never used, because Debian's is too old for
// nats.go's jetstream API. A missing binary is an error that says how to
// install it; tests fail on it, they never skip.
//
// # Processes
//
// Servers are started with SIGKILL as their parent-death signal (Linux), so
// they do not outlive the test binary even when it crashes or is killed by
// go test's timeout; only their temporary directories are left behind then.
// Each server's stdout and stderr go to a file in its directory, and the
// end of it is included in every start error.
//
// Ports are chosen below the kernel's ephemeral range and reserved, for as
// long as the server is open, against every other user of this package on
// the machine (go test runs packages in parallel). Restart needs the port
// to stay free while the server is down: a port in the ephemeral range
// could meanwhile become the local end of an outgoing connection, such as a
// client's reconnect attempt to that very port.
package testinfra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// readyTimeout bounds how long a start waits for a server to serve, so a
// wedged server fails the test instead of hanging it until go test's
// timeout; a shorter context deadline wins.
const readyTimeout = 30 * time.Second

// startAttempts bounds the retries when another process binds the chosen
// port between our check and the server's own bind.
const startAttempts = 5

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

// server is what NATS and Redis have in common: a child process on a fixed
// port, in its own directory, that can be killed and started again with the
// same arguments.
type server struct {
	name    string
	bin     string
	dir     string // removed by close
	logPath string
	port    int
	release func() // gives the port reservation back
	args    func(port int) []string
	// ready checks that the server at addr serves and is process pid,
	// not some other program that took the port.
	ready func(ctx context.Context, addr string, pid int) error

	// life serialises start, kill and close, so a Restart racing a Kill
	// from another goroutine cannot leave two processes or none.
	life   sync.Mutex
	closed bool

	// mu guards the current process, which PID and start errors read
	// while life may be held for a whole readiness wait.
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process has been reaped
	logStart int64         // where this run's output begins in the log
}

// newServer creates the server's directory and starts it on a free port,
// trying other ports when one turns out to be taken.
func newServer(ctx context.Context, s *server, pick func() (int, func(), error)) error {
	dir, err := os.MkdirTemp("", "switchyard-"+s.name+"-")
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.dir = dir
	s.logPath = filepath.Join(dir, s.name+".log")
	for attempt := 1; ; attempt++ {
		var port int
		var release func()
		if port, release, err = pick(); err != nil {
			break
		}
		s.port, s.release = port, release
		if err = s.start(ctx); err == nil {
			return nil
		}
		release()
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts || ctx.Err() != nil {
			break
		}
	}
	os.RemoveAll(dir)
	return err
}

func (s *server) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// start runs the process and waits until it serves; on failure the process
// is gone and the error carries its output. The caller holds life, or owns
// s exclusively.
func (s *server) start(ctx context.Context) error {
	log, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	defer log.Close() // the child has its own descriptor
	st, err := log.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	cmd := exec.Command(s.bin, s.args(s.port)...)
	cmd.Dir = s.dir
	// A file rather than a pipe: no copying goroutine for Wait to wait on,
	// and the output is still there after the process is gone.
	cmd.Stdout, cmd.Stderr = log, log
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.logStart = cmd, exited, st.Size()
	s.mu.Unlock()

	if err := s.waitReady(ctx, cmd, exited); err != nil {
		s.killLocked()
		return err
	}
	return nil
}

// waitReady polls until the server serves, it exits, or the deadline.
func (s *server) waitReady(ctx context.Context, cmd *exec.Cmd, exited chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		// The check runs beside the wait for exit: a server that failed to
		// bind exits at once, while a check against whatever holds the port
		// instead may take its full timeout.
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		res := make(chan error, 1)
		go func() { res <- s.check(cctx, cmd.Process.Pid) }()
		select {
		case last = <-res:
		case <-exited:
		}
		ccancel()
		select {
		case <-exited:
			out := s.output()
			if strings.Contains(strings.ToLower(out), "address already in use") {
				return fmt.Errorf("%s could not bind %s: %w; its output:\n%s", s.name, s.addr(), errAddrInUse, out)
			}
			return fmt.Errorf("%s exited while starting (%v); its output:\n%s", s.name, cmd.ProcessState, out)
		default:
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready on %s: %v (last check: %v); its output:\n%s",
				s.name, cmd.Process.Pid, s.addr(), context.Cause(ctx), last, s.output())
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// check is the readiness check behind a plain TCP connect, so that client
// libraries are only used once something listens and never log dial
// failures of their own.
func (s *server) check(ctx context.Context, pid int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.addr())
	if err != nil {
		return err
	}
	c.Close()
	return s.ready(ctx, s.addr(), pid)
}

// output is the end of what the current run wrote.
func (s *server) output() string {
	s.mu.Lock()
	from := s.logStart
	s.mu.Unlock()
	f, err := os.Open(s.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 4 << 10
	if st, err := f.Stat(); err == nil && st.Size()-from > max {
		from = st.Size() - max
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, from, 1<<62))
	if len(b) == 0 {
		return "(no output)"
	}
	return strings.TrimRight(string(b), "\n")
}

func (s *server) running() bool {
	return s.pid() != 0
}

func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.exited:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

func (s *server) kill() error {
	s.life.Lock()
	defer s.life.Unlock()
	return s.killLocked()
}

// killLocked sends SIGKILL and waits until the process is reaped, so that
// its port is free and its files are closed when it returns.
func (s *server) killLocked() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	// Process.Kill goes through a pidfd, so it cannot hit a recycled pid.
	cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still running 10s after SIGKILL", s.name, cmd.Process.Pid)
	}
}

func (s *server) restart(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return fmt.Errorf("%s: restart after Close", s.name)
	}
	if err := s.killLocked(); err != nil {
		return err
	}
	return s.start(ctx)
}

func (s *server) close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.killLocked()
	s.release()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("%s: %w", s.name, rerr))
	}
	return err
}

// executable reports why path cannot be run, or nil.
func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// RepoRoot walks up from the working directory to the repository's root,
// the directory holding go.work. go test runs a test binary in its
// package's directory, so tests find the root wherever the package is.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work in %s or any directory above it", wd)
		}
		dir = parent
	}
}
