package service

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
)

// An event about an agent that the projection cannot read — stored by
// someone else on the agent's subject, a number where the status belongs
// — is recorded and counted by the follower, and nothing else: the
// agent's version moves with it, so the agent's next change through REST
// goes through (when such an event was skipped, every change of the agent
// failed: "the projection is at AGENTS #2 of #3"), the agent is still
// offered callers, and a rebuild reaches the live state.
func TestAMalformedEventLeavesTheAgentUsable(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("longest-idle-agent", "1001")
	body := []byte(`{"specversion":"1.0","id":"not-ours-1","source":"someone/else","type":"agent.status.changed","data":{"status":7}}`)
	if _, err := e.js.Publish(context.Background(), "agents.1001.status.changed", body); err != nil {
		t.Fatal(err)
	}
	e.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)
	e.malformed = 1
	e.eventually("the event recorded as malformed", func() bool {
		resp, err := http.Get(e.base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "switchyard_qd_events_applied_total{") && strings.Contains(l, `result="malformed"`) && strings.Contains(l, `stream="AGENTS"`) {
				return strings.HasSuffix(l, " 1")
			}
		}
		return false
	})
	e.do("POST", "/v1/agents/1001/login", nil, 200)
	e.caller("c-malformed")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-malformed", Queue: "support", Node: "fs1"}); r.Error != nil || r.Member == nil {
		t.Fatalf("enqueue: %+v", r)
	}
	e.eventually("the agent in the call", func() bool { _, st := e.agentState("1001"); return st == "in_call" })
	e.rebuildMatchesLive()
}
