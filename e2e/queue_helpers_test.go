package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// qdProc is the queue-distributor running as its own process; Kill and
// Start let a test take it down hard and bring it back on the same
// address, NATS, Redis and instance name.
type qdProc struct {
	t        *testing.T
	env      []string
	admin    string
	token    string
	instance string
	log      *bytes.Buffer
	logMu    *sync.Mutex

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// startQueueDistributor starts the service against natsURL and redisURL
// and waits until it is ready; extra are more KEY=value settings.
func startQueueDistributor(t *testing.T, natsURL, redisURL, instance string, extra ...string) *qdProc {
	t.Helper()
	p := &qdProc{t: t, admin: testinfra.FreeAddr(t), token: "e2e-token", instance: instance, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	p.env = append(os.Environ(),
		"SWITCHYARD_NATS_URL="+natsURL, "SWITCHYARD_REDIS_URL="+redisURL, "SWITCHYARD_ADMIN_TOKEN="+p.token,
		"SWITCHYARD_QD_ADMIN_ADDR="+p.admin, "SWITCHYARD_QD_INSTANCE="+instance, "SWITCHYARD_QD_SHUTDOWN_GRACE=5s",
		"SWITCHYARD_LOG_LEVEL=info")
	p.env = append(p.env, extra...)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.logMu.Lock()
			t.Logf("queue-distributor %s log:\n%s", instance, lastLines(p.log.String(), 40))
			p.logMu.Unlock()
		}
	})
	p.Start()
	return p
}

// Start runs the process (again) and waits for /readyz.
func (p *qdProc) Start() {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(binaries, "queue-distributor"))
	cmd.Env = p.env
	w := syncWriter{p.log, p.logMu}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			p.logMu.Lock()
			defer p.logMu.Unlock()
			p.t.Fatalf("queue-distributor exited before it was ready:\n%s", lastLines(p.log.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("queue-distributor not ready:\n%s", lastLines(p.log.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill is kill -9.
func (p *qdProc) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Stop is SIGTERM and waits for the exit.
func (p *qdProc) Stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
}

// do calls the admin REST and decodes the JSON answer; want is the
// status expected (0: any).
func (p *qdProc) do(method, path string, body any, want int) map[string]any {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+p.admin+path, rd)
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		p.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return out
}

// agent is one agent's status and state as the REST shows them.
func (p *qdProc) agent(id string) (status, state string) {
	a := p.do("GET", "/v1/agents/"+id, nil, 200)
	status, _ = a["status"].(string)
	state, _ = a["state"].(string)
	return status, state
}

// eventually polls f until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
