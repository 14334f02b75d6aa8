package service

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// cancelled is the gateway's reply to an originate that the distributor
// stopped: the agent is freed without penalty.
const cancelled = `{"error":{"code":"command_failed","message":"-ERR ORIGINATOR_CANCEL","cause":"ORIGINATOR_CANCEL"}}`

// BenchmarkAgentAvailableToOriginate is the issue's "agent becomes
// available → offer sent, p99 < 2 ms", end to end through the running
// service: 10,000 agents in one queue, all on a break, and 1,000 callers
// waiting. A sample makes one agent available and times until its
// originate reaches the gateway (fs.fs1.api) — the status event stored
// in JetStream and applied, the decision in Redis, the offer's events
// stored, the ring sent. Then, untimed, the agent goes back on a break,
// the ring is cancelled and the caller is back in the queue, so every
// sample starts from the same state. An iteration is
// SWITCHYARD_BENCH_OFFER_SAMPLES samples (default 1,000), so that even
// -benchtime 1x gives a p99. Reports p50/p99/max per sample.
//
//	distributor: the status change as the REST handler makes it (distributor.SetStatus)
//	rest:        POST /v1/agents/{id}/login, with its HTTP round trip
func BenchmarkAgentAvailableToOriginate(b *testing.B) {
	e := newBenchService(b)
	ctx := context.Background()
	agents := envInt(b, "SWITCHYARD_BENCH_OFFER_AGENTS", 10000)
	start := time.Now()
	ids, err := e.fillQueue(ctx, "support", agents, envInt(b, "SWITCHYARD_BENCH_OFFER_CALLERS", 1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d agents and their callers set up through the distributor in %v", agents, time.Since(start).Round(time.Millisecond))
	samples := envInt(b, "SWITCHYARD_BENCH_OFFER_SAMPLES", 1000)
	next := 0
	issuers := []struct {
		name  string
		issue func(agent string) error
	}{
		{"distributor", func(agent string) error { return e.svc.d.SetStatus(ctx, agent, domain.StatusAvailable, "") }},
		{"rest", func(agent string) error { return e.login(agent) }},
	}
	floor := e.newFloor(b)
	for _, is := range issuers {
		b.Run(is.name, func(b *testing.B) {
			var lat, one, chain []time.Duration
			for b.Loop() {
				for range samples {
					agent := ids[next%len(ids)]
					next++
					d, err := e.offerOnce(ctx, b, agent, is.issue)
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, d)
					b.StopTimer()
					o, c := floor(ctx)
					one, chain = append(one, o), append(chain, c)
					b.StartTimer()
				}
			}
			reportLatency(b, lat)
			reportPercentiles(b, "floor-append", one)
			reportPercentiles(b, "floor-chain", chain)
		})
	}
}

// newFloor returns a probe of the infrastructure alone, taken after each
// sample on the same servers: one JetStream append (publish, stored in a
// file stream, acknowledged) and the chain any event-sourced offer
// needs at least — the status event appended, the offer's event
// appended, a NATS request to the gateway — with nothing of ours in
// between (no Redis, no decision). The offer's time over floor-chain is
// what the distributor itself costs.
func (e *benchService) newFloor(b *testing.B) func(ctx context.Context) (one, chain time.Duration) {
	ctx := context.Background()
	// Stored as QUEUES and AGENTS are.
	if _, err := e.js.CreateOrUpdateStream(ctx, bus.Stream{Name: "BENCHFLOOR", Subjects: []string{"benchfloor.>"}}.Config()); err != nil {
		b.Fatal(err)
	}
	sub, err := e.nc.Subscribe("benchfloor.gateway", func(m *nats.Msg) { _ = m.Respond([]byte(`{"output":"+OK"}`)) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	body := make([]byte, 400) // about an agent.status.changed envelope
	n := 0
	return func(ctx context.Context) (time.Duration, time.Duration) {
		store := func() {
			n++
			m := &nats.Msg{Subject: "benchfloor.append", Data: body, Header: nats.Header{}}
			m.Header.Set(nats.MsgIdHdr, fmt.Sprint("floor-", n))
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		store()
		one := time.Since(t0)
		t0 = time.Now()
		store()
		store()
		if _, err := e.nc.Request("benchfloor.gateway", body, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		return one, time.Since(t0)
	}
}

// fillQueue creates queue with n agents, all logged in on a break, and
// callers waiting, through the distributor (events stored and applied as
// the REST API would; faster than 30,000 HTTP calls). It returns the
// agents' ids.
func (e *benchService) fillQueue(ctx context.Context, queue string, n, callers int) ([]string, error) {
	d := e.svc.d
	if _, err := d.PutQueue(ctx, domain.Queue{Name: queue, Strategy: domain.LongestIdle}); err != nil {
		return nil, fmt.Errorf("create queue %s: %w", queue, err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(20000 + i)
	}
	// Each agent is its own aggregate: they can be written at once.
	err := parallel(n, 8, func(i int) error {
		a := domain.Agent{ID: ids[i], Contact: "user/" + ids[i], RingTimeoutSeconds: 20, MaxNoAnswer: 3}
		if _, err := d.PutAgent(ctx, a); err != nil {
			return fmt.Errorf("create agent %s: %w", a.ID, err)
		}
		return d.SetStatus(ctx, a.ID, domain.StatusOnBreak, "setup")
	})
	if err != nil {
		return nil, err
	}
	// Tiers are the queue's events: one writer, or every write conflicts.
	for i, id := range ids {
		if err := d.SetTier(ctx, domain.Tier{Queue: queue, Agent: id, Level: 1 + i%3, Position: 1 + i%100}); err != nil {
			return nil, fmt.Errorf("put agent %s in %s: %w", id, queue, err)
		}
	}
	for i := range callers {
		m := domain.Member{CallID: fmt.Sprintf("%08x-5eed-4000-8000-%012x", i, i), Queue: queue, Node: "fs1", CallerNumber: fmt.Sprint("+4420", 7000000+i)}
		if _, err := d.Join(ctx, m); err != nil {
			return nil, fmt.Errorf("join caller %d: %w", i, err)
		}
	}
	return ids, nil
}

func (e *benchService) login(agent string) error {
	req, err := http.NewRequest("POST", e.base+"/v1/agents/"+agent+"/login", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("log agent %s in: %w", agent, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("log agent %s in: %s", agent, resp.Status)
	}
	return nil
}

// offerOnce makes agent available with issue and returns how long until
// its originate reached the gateway; then, with the timer stopped, it
// puts everything back: the agent on a break, the ring cancelled, the
// caller waiting again.
func (e *benchService) offerOnce(ctx context.Context, b *testing.B, agent string, issue func(string) error) (time.Duration, error) {
	start := time.Now()
	if err := issue(agent); err != nil {
		return 0, err
	}
	var r ring
	select {
	case r = <-e.rings:
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("agent %s available: no originate within 10 s", agent)
	}
	lat := r.at.Sub(start)
	b.StopTimer()
	defer b.StartTimer()
	if r.agent != agent {
		return 0, fmt.Errorf("originate rang agent %s, want %s", r.agent, agent)
	}
	// On a break first: cancelling the ring frees the agent, and an
	// available one would be offered the requeued caller at once.
	if err := e.svc.d.SetStatus(ctx, agent, domain.StatusOnBreak, "bench"); err != nil {
		return 0, err
	}
	if err := r.reply(cancelled); err != nil {
		return 0, err
	}
	err := until(10*time.Second, func() (bool, error) {
		a, err := e.svc.store.Agent(ctx, agent)
		if err != nil || a.State != domain.StateIdle {
			return false, err
		}
		m, err := e.svc.store.Member(ctx, r.member)
		return err == nil && m.State == "waiting", err
	})
	if err != nil {
		return 0, fmt.Errorf("agent %s and caller %s back where they were: %w", agent, r.member, err)
	}
	return lat, nil
}

// BenchmarkFollowerQueueEvents is the issue's "≥ 5,000 queue events per
// second applied end to end": callers joining and leaving a queue,
// appended to QUEUES as fast as JetStream takes them (as many
// distributors and the gateway would), and applied to Redis by the
// running service's follower, which also has every join looked at for an
// offer. An iteration appends SWITCHYARD_BENCH_FOLLOW_EVENTS events
// (default 50,000) and ends when the projection's position in QUEUES
// reaches the last. Reports events/s from the first append to the last
// applied.
func BenchmarkFollowerQueueEvents(b *testing.B) {
	e := newBenchService(b)
	ctx := context.Background()
	if _, err := e.fillQueue(ctx, "support", 100, 0); err != nil {
		b.Fatal(err)
	}
	n := envInt(b, "SWITCHYARD_BENCH_FOLLOW_EVENTS", 50000)
	pub := eventPublisher{js: e.js, source: "switchyard/queue-distributor/bench"}
	calls := 0
	var total int
	for b.Loop() {
		last, err := pub.joinsAndLeaves(ctx, "support", n, &calls)
		if err != nil {
			b.Fatal(err)
		}
		err = until(5*time.Minute, func() (bool, error) {
			got, err := e.svc.store.LastApplied(ctx, "QUEUES")
			return got >= last, err
		})
		if err != nil {
			b.Fatalf("follower reaching QUEUES #%d: %v", last, err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}

// eventPublisher appends events as eventlog.Append stores them (envelope,
// subject, Nats-Msg-Id, Ce-Type), asynchronously.
type eventPublisher struct {
	js     jetstream.JetStream
	source string
}

// joinsAndLeaves appends n events to queue: callers joining and, once a
// hundred wait, the longest waiting abandoning. calls numbers the callers
// across calls. It returns the stream's sequence of the last event.
func (p eventPublisher) joinsAndLeaves(ctx context.Context, queue string, n int, calls *int) (uint64, error) {
	futures := make([]jetstream.PubAckFuture, 0, n)
	var waiting []string
	for range n {
		var (
			f   jetstream.PubAckFuture
			err error
		)
		if len(waiting) < 100 || len(futures)%2 == 0 {
			*calls++
			id := fmt.Sprintf("%08x-b0b0-4000-8000-%012x", *calls, *calls)
			waiting = append(waiting, id)
			f, err = p.publish(domain.MemberJoined, queue, id, domain.MemberData{Member: domain.Member{CallID: id, Queue: queue, Node: "fs1", JoinedAt: time.Now().UnixMilli()}})
		} else {
			id := waiting[0]
			waiting = waiting[1:]
			f, err = p.publish(domain.MemberAbandoned, queue, id, domain.MemberEndData{CallID: id, Reason: "caller hung up", WaitMS: 1000, At: time.Now().UnixMilli()})
		}
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	var last uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		case err := <-f.Err():
			return 0, fmt.Errorf("append %s: %w", f.Msg().Subject, err)
		}
	}
	return last, nil
}

func (p eventPublisher) publish(typ, id, callID string, data any) (jetstream.PubAckFuture, error) {
	subject := domain.Subject(typ, id)
	env, err := events.New("", p.source, typ, subject, callID, data)
	if err != nil {
		return nil, err
	}
	body, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, env.ID)
	msg.Header.Set("Ce-Type", typ)
	// A loaded machine may take longer than the default 200 ms to make
	// room for more: wait rather than fail the benchmark.
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("append %s: %w", subject, err)
	}
	return f, nil
}
