package eventlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

func TestAppendIsOptimisticPerAggregate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := testinfra.NewNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	l := New(js, "test")
	if err := l.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	a1, err := l.Append(ctx, "", domain.AgentCreated, "a1", "", domain.AgentData{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Creating it again (version 0 expected) conflicts.
	if _, err := l.Append(ctx, "", domain.AgentCreated, "a1", "", domain.AgentData{}, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	// Another agent's events do not move a1's version.
	if _, err := l.Append(ctx, "", domain.AgentCreated, "a2", "", domain.AgentData{}, 0); err != nil {
		t.Fatal(err)
	}
	a1b, err := l.Append(ctx, "", domain.AgentStatusChanged, "a1", "", domain.StatusData{Status: "available"}, int64(a1.Event.Seq))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "", domain.AgentStatusChanged, "a1", "", domain.StatusData{Status: "on_break"}, int64(a1.Event.Seq)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale version: %v", err)
	}
	// A retried append with the same id is stored once.
	d1, _ := l.Append(ctx, "same", domain.AgentStatusChanged, "a1", "", domain.StatusData{Status: "on_break"}, Any)
	d2, _ := l.Append(ctx, "same", domain.AgentStatusChanged, "a1", "", domain.StatusData{Status: "on_break"}, Any)
	if d1.Duplicate || !d2.Duplicate || d1.Event.Seq != d2.Event.Seq || d1.Event.Seq != a1b.Event.Seq+1 {
		t.Fatalf("dedup: %+v %+v", d1, d2)
	}
	var seen []string
	n, err := l.Replay(ctx, "AGENTS", func(ev projection.Event, err error) error {
		if err != nil {
			return err
		}
		seen = append(seen, ev.Type+"/"+ev.ID)
		return nil
	})
	if err != nil || n != 4 {
		t.Fatalf("replay %d %v %v", n, err, seen)
	}
}

// Decode refuses only a message no aggregate of the stream owns; any
// other that cannot be applied is its aggregate's event with the
// problem named — by Decode, or by the projection's check of its data —
// so the projection records it (and the aggregate's version moves as
// JetStream's does).
func TestDecodeTellsWhatCannotBeApplied(t *testing.T) {
	cases := []struct {
		name, subject, body, problem string // problem "": applied as it is
	}{
		{"valid", "agents.a1.status.changed", `{"specversion":"1.0","id":"1","source":"s","type":"agent.status.changed","data":{"status":"on_break"}}`, ""},
		{"not json", "agents.a1.created", "{", "not an event envelope"},
		{"not a cloudevent", "agents.a1.created", `{"x":1}`, "not an event envelope"},
		{"type off subject", "agents.a1.created", `{"specversion":"1.0","id":"1","source":"s","type":"agent.deleted","data":{}}`, "does not belong on subject"},
		{"data the projection cannot read", "agents.a1.created", `{"specversion":"1.0","id":"1","source":"s","type":"agent.created","data":{}}`, "agent is missing"},
		{"available without a time", "agents.a1.status.changed", `{"specversion":"1.0","id":"1","source":"s","type":"agent.status.changed","data":{"status":"available"}}`, "at_ms is missing"},
	}
	for _, c := range cases {
		ev, err := Decode("AGENTS", 7, c.subject, []byte(c.body))
		if err != nil || ev.ID != "a1" || ev.Seq != 7 || ev.Stream != "AGENTS" {
			t.Errorf("%s: %+v %v", c.name, ev, err)
			continue
		}
		problem := ev.Problem
		if problem == "" {
			if err := projection.CheckData(ev.Type, ev.Data); err != nil {
				problem = err.Error()
			}
		}
		if c.problem == "" && (problem != "" || ev.EventID != "1") || c.problem != "" && !strings.Contains(problem, c.problem) {
			t.Errorf("%s: problem %q, want %q", c.name, problem, c.problem)
		}
	}
	for _, subject := range []string{"agents", "agents.a1", "queues.q1.created", "agents..created"} {
		if _, err := Decode("AGENTS", 1, subject, []byte(`{"specversion":"1.0","id":"1","source":"s","type":"agent.created","data":{}}`)); err == nil {
			t.Errorf("%s: decoded on AGENTS", subject)
		}
	}
}
