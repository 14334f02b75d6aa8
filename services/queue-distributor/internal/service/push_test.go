package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
)

// A mobile agent (push_user) is woken with one VoIP push before its phone
// rings, carrying the call; a desk agent gets none.
func TestMobileAgentIsPushedBeforeTheRing(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("longest-idle-agent", "1001")
	e.do("PUT", "/v1/agents/1001", map[string]any{"contact": "user/1001", "push_user": "ada"}, 200)
	e.do("POST", "/v1/agents/1001/login", nil, 200)
	e.caller("c-1")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1", CallerNumber: "+4420", CallerName: "Grace"})
	e.eventually("agent in call", func() bool { _, st := e.agentState("1001"); return st == "in_call" })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, "PUSH", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"push.>"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(3 * time.Second))
	if err != nil {
		t.Fatalf("no push.requested: %v", err)
	}
	env, err := events.Parse(m.Data())
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		RequestID string            `json:"request_id"`
		User      string            `json:"user"`
		Type      string            `json:"type"`
		CallID    string            `json:"call_id"`
		TTL       int               `json:"ttl_seconds"`
		Data      map[string]string `json:"data"`
	}
	if err := env.DecodeData(&data); err != nil {
		t.Fatal(err)
	}
	if m.Subject() != "push.ada.requested" || env.Type != "push.requested" || data.User != "ada" || data.Type != "voip" ||
		data.CallID != "c-1" || !strings.HasPrefix(data.RequestID, "offer-") || data.TTL != 30 ||
		data.Data["agent"] != "1001" || data.Data["caller_id_name"] != "Grace" || data.Data["queue"] != "support" {
		t.Fatalf("push %s %s %+v", m.Subject(), env.Type, data)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
		t.Fatal("more than one push for one ring")
	}
}
