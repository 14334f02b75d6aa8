package e2e

import (
	"bytes"
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
	log      syncWriter

	mu  sync.Mutex
	cur *proc
}

// startQueueDistributor starts the service against natsURL and redisURL
// and waits until it is ready; extra are more KEY=value settings.
func startQueueDistributor(t *testing.T, natsURL, redisURL, instance string, extra ...string) *qdProc {
	t.Helper()
	p := &qdProc{t: t, admin: testinfra.FreeAddr(t), token: "e2e-token", instance: instance, log: syncWriter{&bytes.Buffer{}, &sync.Mutex{}}}
	p.env = append([]string{"SWITCHYARD_NATS_URL=" + natsURL, "SWITCHYARD_REDIS_URL=" + redisURL, "SWITCHYARD_ADMIN_TOKEN=" + p.token,
		"SWITCHYARD_QD_ADMIN_ADDR=" + p.admin, "SWITCHYARD_QD_INSTANCE=" + instance, "SWITCHYARD_QD_SHUTDOWN_GRACE=5s",
		"SWITCHYARD_LOG_LEVEL=info"}, extra...)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.log.mu.Lock()
			t.Logf("queue-distributor %s log:\n%s", instance, lastLines(p.log.b.String(), 40))
			p.log.mu.Unlock()
		}
	})
	p.Start()
	return p
}

// Start runs the process (again) and waits for /readyz.
func (p *qdProc) Start() {
	p.t.Helper()
	cur := startProc(p.t, "queue-distributor", p.log, p.env...)
	p.mu.Lock()
	p.cur = cur
	p.mu.Unlock()
	cur.waitReady(p.t, "queue-distributor", p.admin, 20*time.Second)
}

// running is the current process (nil before the first Start).
func (p *qdProc) running() *proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Kill is kill -9.
func (p *qdProc) Kill() {
	if cur := p.running(); cur != nil {
		cur.cmd.Process.Kill()
		<-cur.exited
	}
}

// Stop is SIGTERM and waits for the exit.
func (p *qdProc) Stop() {
	cur := p.running()
	cur.cmd.Process.Signal(syscall.SIGTERM)
	<-cur.exited
}

// do calls the admin REST and decodes the JSON answer; want is the
// status expected (0: any).
func (p *qdProc) do(method, path string, body any, want int) map[string]any {
	p.t.Helper()
	return adminDo(p.t, p.admin, p.token, method, path, body, want)
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
