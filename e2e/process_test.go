package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one run of a service binary from the e2e build, its output
// kept for the test's log.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    syncWriter
}

// startProc starts the service name with env added to the environment.
func startProc(t *testing.T, name string, log syncWriter, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries, name))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), log: log}
	go func() { cmd.Wait(); close(p.exited) }()
	return p
}

// tail is the last n lines the process wrote.
func (p *proc) tail(n int) string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return lastLines(p.log.b.String(), n)
}

// waitReady waits until GET /readyz on admin answers 200; the process
// exiting first, or within not being ready, fails the test with its log.
func (p *proc) waitReady(t *testing.T, name, admin string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready:\n%s", name, p.tail(30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready:\n%s", name, p.tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runService starts the service name, stops it with SIGTERM when the
// test ends — failing the test if it is not gone within grace — and
// waits until it is ready.
func runService(t *testing.T, name, admin string, grace time.Duration, env ...string) *proc {
	t.Helper()
	p := startProc(t, name, syncWriter{&bytes.Buffer{}, &sync.Mutex{}}, env...)
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not exit %v after SIGTERM", name, grace)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.tail(40))
		}
	})
	p.waitReady(t, name, admin, 20*time.Second)
	return p
}
