package eventlog

import (
	"context"
	"errors"
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

func TestDecodeRefusesForeignMessages(t *testing.T) {
	cases := map[string]struct {
		subject string
		body    string
	}{
		"not json":         {"agents.a1.created", "{"},
		"not a cloudevent": {"agents.a1.created", `{"x":1}`},
		"type off subject": {"agents.a1.created", `{"specversion":"1.0","id":"1","source":"s","type":"agent.deleted","data":{}}`},
		"no aggregate":     {"agents", `{"specversion":"1.0","id":"1","source":"s","type":"agent.created","data":{}}`},
	}
	for name, c := range cases {
		if _, err := Decode("AGENTS", 1, c.subject, []byte(c.body)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if ev, err := Decode("AGENTS", 7, "agents.a1.status.changed", []byte(`{"specversion":"1.0","id":"1","source":"s","type":"agent.status.changed","data":{"status":"available"}}`)); err != nil || ev.ID != "a1" || ev.Seq != 7 || ev.EventID != "1" {
		t.Fatalf("valid event: %+v %v", ev, err)
	}
}
