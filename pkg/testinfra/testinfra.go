// Package testinfra gives tests real infrastructure: a real nats-server with
// JetStream and a real redis-server, each its own OS process on a free
// loopback port with a temporary directory, so that reliability tests can
// kill and restart them. There are no fakes here.
//
// One set of servers per test package is the usual pattern:
//
//	var infra *testinfra.Servers
//
//	func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS, testinfra.WithRedis)) }
//
// and a test that kills a server starts its own with NewNATS(t).
//
// A missing binary fails the test with the command that installs it; it
// never skips.
package testinfra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is one server child process that can be killed and restarted with
// the same arguments.
type process struct {
	name string
	bin  string
	args []string
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	output *bytes.Buffer
	exited chan struct{}
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	out := &bytes.Buffer{}
	w := &lockedWriter{buf: out}
	cmd.Stdout, cmd.Stderr = w, w
	// The server must die with the test binary, even on a crash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.output, p.exited = cmd, out, exited
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die", p.name, cmd.Process.Pid)
	}
}

// pid is the running process' id, 0 if none.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.output == nil {
		return ""
	}
	b := p.output.Bytes()
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(b)
}

func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 1<<20 {
		w.buf.Reset()
	}
	return w.buf.Write(b)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds; callers retry on a failed start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls check until it succeeds, the process dies, or 20s pass.
func waitReady(ctx context.Context, p *process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last error
	for {
		if !p.running() {
			return fmt.Errorf("%s exited while starting: %s", p.name, p.tail())
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after 20s: %v; output: %s", p.name, last, p.tail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RepoRoot walks up from the working directory to the repository's root,
// the directory holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// fatal reports a setup failure on t.
func fatal(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
