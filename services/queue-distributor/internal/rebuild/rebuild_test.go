package rebuild

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &servers, testinfra.WithRedis)) }

var (
	prefixMu sync.Mutex
	prefixN  int
)

// newStore is a projection under a prefix of its own in the shared Redis.
func newStore(tb testing.TB, name string) *projection.Store {
	prefixMu.Lock()
	prefixN++
	p := fmt.Sprintf("rb%d-%s:", prefixN, name)
	prefixMu.Unlock()
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	tb.Cleanup(func() {
		_ = projection.New(rdb, p, projection.Limits{}).Reset(context.Background())
		rdb.Close()
	})
	return projection.New(rdb, p, projection.Limits{})
}

// newLog is a JetStream of its own (rebuild reads the streams by their
// fixed names) with QUEUES and AGENTS created.
func newLog(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	ns := testinfra.NewNATS(tb)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		tb.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), js, "QUEUES", "AGENTS"); err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// publishWorkload stores n generated events as the distributor's event log
// would hold them (envelope, subject, type header) and calls stored with
// each, as the projection sees it, in the order they were stored.
func publishWorkload(ctx context.Context, js jetstream.JetStream, n int, stored func(projection.Event)) error {
	seq := map[string]uint64{}
	var pending []jetstream.PubAckFuture
	var want []uint64
	flush := func() error {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
		for i, f := range pending {
			select {
			case ack := <-f.Ok():
				// One publisher in order: each event lands where its
				// sequence says, which the live projection relies on.
				if ack.Sequence != want[i] {
					return fmt.Errorf("event stored at %s #%d, want #%d", ack.Stream, ack.Sequence, want[i])
				}
			case err := <-f.Err():
				return fmt.Errorf("store event %s: %w", f.Msg().Subject, err)
			}
		}
		pending, want = pending[:0], want[:0]
		return nil
	}
	err := generate(n, func(g genEvent) error {
		subject := domain.Subject(g.Type, g.ID)
		env, err := events.New("", "switchyard/queue-distributor/workload", g.Type, subject, g.CallID, g.Data)
		if err != nil {
			return err
		}
		env.Time = g.At
		body, err := env.Marshal()
		if err != nil {
			return err
		}
		// No Nats-Msg-Id: nothing here is retried, and de-duplicating a
		// million ids would only slow the setup down.
		msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{"Ce-Type": []string{g.Type}}}
		// A loaded machine may take longer than the default 200 ms to make
		// room for more: wait rather than fail.
		f, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute))
		if err != nil {
			return fmt.Errorf("store event %s: %w", subject, err)
		}
		st := domain.Stream(g.Type)
		seq[st]++
		pending, want = append(pending, f), append(want, seq[st])
		if stored != nil {
			stored(projection.Event{Stream: st, Seq: seq[st], Type: g.Type, ID: g.ID, Data: env.Data, At: g.At})
		}
		if len(pending) == 2048 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// TestRebuildEqualsLiveProjection replays a generated log and compares the
// result with a projection that applied every event one by one, in the
// order they were stored, as a live distributor does.
func TestRebuildEqualsLiveProjection(t *testing.T) {
	ctx := context.Background()
	_, js := newLog(t)
	live := newStore(t, "live")
	statuses := map[string]int{}
	var applyErr error
	err := publishWorkload(ctx, js, 20000, func(ev projection.Event) {
		r, err := live.Apply(ctx, ev, true)
		if err != nil && applyErr == nil {
			applyErr = err
		}
		statuses[r.Status]++
		if r.Status == projection.Ignored {
			t.Errorf("generated %s #%d %s %s ignored by the projection: %s", ev.Stream, ev.Seq, ev.Type, ev.ID, r.Detail)
		}
	})
	if err != nil || applyErr != nil {
		t.Fatal(err, applyErr)
	}
	if statuses[projection.Applied] != 20000 {
		t.Fatalf("live outcomes %v, want 20000 applied", statuses)
	}
	want, err := live.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rebuilt := newStore(t, "rebuilt")
	res, err := Run(ctx, js, rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 20000 || res.Skipped != 0 || res.Malformed != 0 {
		t.Fatalf("rebuild read %d events, skipped %d, malformed %d; want 20000, 0, 0", res.Events, res.Skipped, res.Malformed)
	}
	if res.Checksum != want {
		t.Fatalf("rebuilt checksum %s, live %s", res.Checksum, want)
	}
}

// Events a careless or hostile producer stored among the distributor's —
// data the scripts cannot read, a body that is no event, a type that does
// not belong on its subject — neither stop a rebuild nor leave the
// aggregate behind its log: each is recorded, as the live follower
// records it, and the rebuilt projection equals the live one. (Before,
// the first of them stopped every rebuild, and with it a start that
// needs one.)
func TestMalformedEventsDoNotStopTheRebuild(t *testing.T) {
	ctx := context.Background()
	_, js := newLog(t)
	publish := func(subject string, body []byte) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, body); err != nil {
			t.Fatal(err)
		}
	}
	event := func(typ, id string, data any) {
		t.Helper()
		subject := domain.Subject(typ, id)
		env, err := events.New("", "switchyard/test", typ, subject, "", data)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := env.Marshal()
		publish(subject, body)
	}
	raw := func(typ, id, data string) {
		t.Helper()
		subject := domain.Subject(typ, id)
		publish(subject, fmt.Appendf(nil, `{"specversion":"1.0","id":"x-%s-%s","source":"switchyard/test","type":%q,"data":%s}`, typ, id, typ, data))
	}
	at := time.Now().UnixMilli()
	event(domain.QueueCreated, "q1", domain.QueueData{Queue: domain.Queue{Name: "q1", Strategy: domain.LongestIdle}})
	raw(domain.QueueCreated, "q2", `{}`) // no queue: stopped the script halfway
	event(domain.AgentCreated, "a1", domain.AgentData{Agent: domain.Agent{ID: "a1", Contact: "user/a1"}})
	raw(domain.AgentStatusChanged, "a1", `{"status":7}`)                                                                       // a number where the status belongs
	publish("agents.a1.status.changed", []byte("not an event"))                                                                // no envelope at all
	publish("agents.a1.state.changed", []byte(`{"specversion":"1.0","id":"y","source":"s","type":"agent.deleted","data":{}}`)) // a deletion off its subject
	event(domain.TierSet, "q1", domain.TierData{Agent: "a1", Level: 1, Position: 1})
	raw(domain.MemberJoined, "q1", `{"member":{"call_id":"c1","node":null,"joined_ms":1}}`) // null: cjson's own value
	event(domain.AgentStatusChanged, "a1", domain.StatusData{Status: domain.StatusAvailable, At: at})

	// The live projection, as the follower feeds it.
	live := newStore(t, "live")
	log := eventlog.New(js, "switchyard/test")
	malformed := 0
	for _, stream := range []string{"QUEUES", "AGENTS"} {
		_, err := log.Replay(ctx, stream, func(ev projection.Event, err error) error {
			if err != nil {
				return err
			}
			r, err := live.Apply(ctx, ev, false)
			if r.Problem != "" {
				malformed++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want, _ := live.Checksum(ctx)
	res, err := Run(ctx, js, newStore(t, "rebuilt"))
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if malformed != 5 || res.Malformed != 5 || res.Skipped != 0 {
		t.Fatalf("malformed: %d live, %d rebuilt (skipped %d); want 5", malformed, res.Malformed, res.Skipped)
	}
	if res.Checksum != want {
		t.Fatalf("rebuilt checksum %s, live %s", res.Checksum, want)
	}
	// The agent's version is its subject's last sequence in the log, the
	// malformed ones included: the next append expecting it succeeds.
	a, err := live.Agent(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := js.Stream(ctx, "AGENTS")
	last, err := stream.GetLastMsgForSubject(ctx, "agents.a1.>")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != last.Sequence || a.Status != domain.StatusAvailable {
		t.Fatalf("agent a1 at version %d, status %s; the log's last is #%d", a.Version, a.Status, last.Sequence)
	}
}

// benchEvents is the size of BenchmarkRebuildMillionEvents' log;
// SWITCHYARD_BENCH_REBUILD_EVENTS makes it smaller for a smoke run.
func benchEvents(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("SWITCHYARD_BENCH_REBUILD_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("SWITCHYARD_BENCH_REBUILD_EVENTS=%q: want a positive number of events", v)
		}
	}
	return n
}

// BenchmarkRebuildMillionEvents is the issue's "rebuild of 1,000,000
// events in under 60 s": a generated log of queue and agent events is
// stored once (not timed), then each iteration rebuilds the projection
// from it. Reports events/s and seconds per rebuild.
func BenchmarkRebuildMillionEvents(b *testing.B) {
	n := benchEvents(b)
	ctx := context.Background()
	_, js := newLog(b)
	start := time.Now()
	if err := publishWorkload(ctx, js, n, nil); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored %d events in %v", n, time.Since(start).Round(time.Millisecond))
	store := newStore(b, "bench")
	for b.Loop() {
		res, err := Run(ctx, js, store)
		if err != nil {
			b.Fatal(err)
		}
		if res.Events != n {
			b.Fatalf("rebuild read %d events, want %d", res.Events, n)
		}
	}
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(n)/per, "events/s")
	b.ReportMetric(per, "s/rebuild")
}
