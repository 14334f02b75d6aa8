// Package distributor is the queue-distributor's behaviour: commands on
// queues and agents become events; events become projection state; a
// change that can make an offer (an agent becomes ready, a caller joins)
// triggers a decision at once; offers ring agents through the gateway and
// bridge the first to answer.
package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Gateway is what the distributor needs of FreeSWITCH.
type Gateway interface {
	API(ctx context.Context, node, command string, background bool, timeout time.Duration) (string, error)
	// Send is API whose request is published before it returns; wait
	// blocks for the reply.
	Send(ctx context.Context, node, command string, background bool, timeout time.Duration) (wait func() (string, error))
	Call(ctx context.Context, callID, op, app, arg string, timeout time.Duration) error
}

// Waker wakes a mobile agent's app (a VoIP push) before its phone rings.
type Waker interface {
	Wake(ctx context.Context, w Wake) error
}

// Wake is one wake-up for an offered call.
type Wake struct {
	ID           string // idempotency key: pushed once however often sent
	User         string // the agent's push_user
	CallID       string
	Agent        string
	Queue        string
	CallerNumber string
	CallerName   string
	TTL          time.Duration // how long the push is worth delivering: the ring
}

// Notifier tells a waiting caller side (queue.enqueue) its outcome and
// the other instances that an offer must stop.
type Notifier interface {
	Outcome(callID string, o Outcome)
	CancelOffer(callID string)
}

// Outcome is what queue.enqueue returns.
type Outcome struct {
	Outcome     string  `json:"outcome"`
	Queue       string  `json:"queue"`
	Agent       string  `json:"agent,omitempty"`
	WaitSeconds float64 `json:"wait_seconds"`
	Digit       string  `json:"digit,omitempty"`
	Target      string  `json:"target,omitempty"`
	Reason      string  `json:"reason,omitempty"`
}

// Config wires a Distributor.
type Config struct {
	Instance string
	Log      *eventlog.Log
	Store    *projection.Store
	Gateway  Gateway
	Notify   Notifier
	Logger   *slog.Logger
	// Push, if set, wakes agents with a push_user before they are rung.
	Push Waker
	// StatsWindow is the window of the stats an estimated wait is
	// taken from (default 15 min).
	StatsWindow time.Duration
	// Offered is called when an originate goes out (for metrics and the
	// latency benchmark): the time the decision was triggered.
	Offered func(trigger time.Time)
	// Lost reports whether the projection lost events it had applied
	// (Redis flushed); when it has, it pauses the distributor and starts
	// the rebuild. Nil: never.
	Lost func(ctx context.Context) bool
}

// Distributor runs the queues.
type Distributor struct {
	cfg   Config
	log   *slog.Logger
	kickC chan kick

	mu      sync.Mutex
	offers  map[string]*offerRun // by call id, offers this instance runs
	live    bool                 // Run is deciding: offers may start (under mu)
	running sync.WaitGroup
	wakeC   chan struct{}

	suspects map[string]bool      // offers seen orphaned on the last recovery pass (Timers' goroutine only)
	lostAt   map[string]time.Time // agents whose claim failed lately, when (under mu; mayRingEarly)

	pauseMu sync.Mutex
	resumed chan struct{} // non-nil while paused; closed by Resume
	pauses  atomic.Uint64 // how many pauses began (Timers forgets its suspects after one)
}

type kick struct {
	queue string
	at    time.Time
}

// New builds a Distributor; Run starts its workers.
func New(cfg Config) *Distributor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Distributor{cfg: cfg, log: cfg.Logger, kickC: make(chan kick, 4096), offers: map[string]*offerRun{}, lostAt: map[string]time.Time{}, wakeC: make(chan struct{}, 1)}
}

func now() time.Time { return time.Now() }

// Kick asks for a decision in queue now.
func (d *Distributor) Kick(queue string) { d.kickAt(queue, now()) }

func (d *Distributor) kickAt(queue string, at time.Time) {
	select {
	case d.kickC <- kick{queue, at}:
	default:
		// Full: a decision pass over every queue is already due (Run
		// sweeps them all when the channel overflows).
		d.log.Warn("decision queue full; queue will be looked at by the next sweep", "queue", queue)
	}
}

// Run decides offers until ctx ends, then waits for running offers to
// reach a safe point (their events stored).
func (d *Distributor) Run(ctx context.Context, workers int) {
	d.setLive(true)
	// Once Run returns no offer starts (Wait may begin), whoever decides.
	defer d.setLive(false)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case k := <-d.kickC:
					d.decideAll(ctx, k)
				}
			}
		}()
	}
	wg.Wait()
}

// Wait waits for running offers (after Run returned).
func (d *Distributor) Wait() { d.running.Wait() }

func (d *Distributor) setLive(v bool) { d.mu.Lock(); d.live = v; d.mu.Unlock() }

// deciding reports whether offers may be decided now: Run is on and the
// distributor is not paused for a rebuild.
func (d *Distributor) deciding() bool {
	d.mu.Lock()
	live := d.live
	d.mu.Unlock()
	return live && !d.Paused()
}

// decideAll makes every offer queue can make now.
func (d *Distributor) decideAll(ctx context.Context, k kick) {
	for ctx.Err() == nil && !d.Paused() {
		offerID := newID()
		o, err := d.cfg.Store.Decide(ctx, k.queue, d.cfg.Instance, offerID, "", now())
		if err != nil {
			d.log.Error("cannot decide offers", "queue", k.queue, "err", err)
			return
		}
		if o == nil {
			return
		}
		d.startOffer(ctx, o, k.at)
	}
}

// apply stores an appended event in the projection at once (the
// follower would too, a moment later) and kicks the queues it made
// offerable. While deciding, the same script also makes the first offer
// the event allows, which starts here: no round trip to a worker and to
// Redis again between an agent becoming available and its phone
// ringing. When an earlier event is not applied yet, it waits for the
// follower to catch up.
func (d *Distributor) apply(ctx context.Context, a eventlog.Appended) (projection.ApplyResult, error) {
	at := now()
	for {
		var r projection.ApplyResult
		var o *projection.Offer
		var err error
		if d.deciding() {
			// Not cancelled with the caller's request: a reservation made
			// in Redis must reach startOffer (or be released there).
			r, o, err = d.cfg.Store.ApplyAndDecide(context.WithoutCancel(ctx), a.Event, d.cfg.Instance, newID(), at)
			if derr := (*projection.DecideError)(nil); errors.As(err, &derr) {
				// The event is applied; the workers kicked below decide
				// again (a reservation left half made is recovered).
				d.log.Error("cannot decide offers", "queues", r.Queues, "err", err)
				err = nil
			}
		} else {
			r, err = d.cfg.Store.Apply(ctx, a.Event, true)
		}
		if err != nil {
			return r, err
		}
		if o != nil {
			d.startOffer(ctx, o, at)
		}
		if r.Status != projection.Gap {
			if r.Status == projection.Applied || r.Status == projection.Ignored {
				for _, q := range r.Queues {
					d.kickAt(q, at)
				}
			}
			return r, nil
		}
		if time.Since(at) > 10*time.Second {
			return r, fmt.Errorf("the projection is behind %s #%d: is the follower running?", a.Event.Stream, a.Event.Seq)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Applied is the follower's hook: an event the consumer applied.
func (d *Distributor) Applied(r projection.ApplyResult) {
	if r.Status == projection.Applied || r.Status == projection.Ignored {
		for _, q := range r.Queues {
			d.Kick(q)
		}
	}
}

// append stores one event and applies it.
func (d *Distributor) append(ctx context.Context, eventID, typ, id, callID string, data any, expect int64) (projection.ApplyResult, error) {
	a, err := d.cfg.Log.Append(ctx, eventID, typ, id, callID, data, expect)
	if err != nil {
		return projection.ApplyResult{}, err
	}
	return d.apply(ctx, a)
}

// catchUp waits until the projection holds everything stream had when
// called: after a version conflict the projection may simply be behind.
func (d *Distributor) catchUp(ctx context.Context, stream string) error {
	last, err := d.cfg.Log.Last(ctx, stream)
	if err != nil {
		return err
	}
	deadline := now().Add(5 * time.Second)
	for {
		got, err := d.cfg.Store.LastApplied(ctx, stream)
		if err != nil {
			return err
		}
		if got >= last {
			return nil
		}
		if now().After(deadline) {
			return fmt.Errorf("the projection is at %s #%d of #%d", stream, got, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// change appends an event about aggregate id (root "queue" or "agent")
// decided on its current state, retrying when another writer got there
// first. version reads the state (and refuses what cannot be done); typ
// may depend on it (created when 0, updated after). The append expects
// the aggregate's version in the projection, which is the sequence of its
// last event in the log once the projection holds that event: when
// another instance's event has not reached this projection yet, the
// append conflicts, the projection catches up and the decision is made
// again on the state that includes it.
func (d *Distributor) change(ctx context.Context, root, id string, version func() (int64, error), event func(version int64) (typ string, data any)) (projection.ApplyResult, error) {
	if err := d.Steady(ctx); err != nil {
		return projection.ApplyResult{}, err
	}
	for attempt := 0; ; attempt++ {
		var v int64
		if err := d.trusted(ctx, func() (err error) { v, err = version(); return err }); err != nil {
			return projection.ApplyResult{}, err
		}
		expect := v
		if v == 0 {
			// Not in the projection: made before and deleted, its
			// deletion (or a stale event about it) is the log's last.
			g, err := d.cfg.Store.Gone(ctx, root, id)
			if err != nil {
				return projection.ApplyResult{}, err
			}
			expect = int64(g)
		}
		typ, payload := event(v)
		r, err := d.append(ctx, "", typ, id, "", payload, expect)
		if !errors.Is(err, eventlog.ErrConflict) || attempt == 3 {
			return r, err
		}
		if err := d.catchUp(ctx, domain.Stream(typ)); err != nil {
			return r, err
		}
	}
}

// Errors the REST layer maps to statuses (and projection.ErrNotFound).
var (
	ErrInUse = errors.New("in use")
	// ErrNoAgents: nobody is logged in to the queue, so nobody would
	// answer; the caller is not queued.
	ErrNoAgents = errors.New("no agent is logged in to the queue")
)

func (d *Distributor) queueVersion(ctx context.Context, name string) (int64, error) {
	q, err := d.cfg.Store.Queue(ctx, name)
	if errors.Is(err, projection.ErrNotFound) {
		return 0, nil
	}
	return int64(q.Version), err
}

// existingQueue is the version of a queue that must exist.
func (d *Distributor) existingQueue(ctx context.Context, name string) func() (int64, error) {
	return func() (int64, error) {
		v, err := d.queueVersion(ctx, name)
		if err == nil && v == 0 {
			return 0, fmt.Errorf("queue %s: %w", name, projection.ErrNotFound)
		}
		return v, err
	}
}

func (d *Distributor) agentVersion(ctx context.Context, id string) (int64, error) {
	a, err := d.cfg.Store.Agent(ctx, id)
	if errors.Is(err, projection.ErrNotFound) {
		return 0, nil
	}
	return int64(a.Version), err
}

// fixed is an event whose type does not depend on the version.
func fixed(typ string, data any) func(int64) (string, any) {
	return func(int64) (string, any) { return typ, data }
}

// createdOrUpdated is created for a new aggregate, updated after.
func createdOrUpdated(created, updated string, data any, wasNew *bool) func(int64) (string, any) {
	return func(v int64) (string, any) {
		*wasNew = v == 0
		if v == 0 {
			return created, data
		}
		return updated, data
	}
}

// PutQueue creates or replaces a queue's configuration.
func (d *Distributor) PutQueue(ctx context.Context, q domain.Queue) (created bool, err error) {
	if err := q.Validate(); err != nil {
		return false, err
	}
	_, err = d.change(ctx, "queue", q.Name, func() (int64, error) { return d.queueVersion(ctx, q.Name) },
		createdOrUpdated(domain.QueueCreated, domain.QueueUpdated, domain.QueueData{Queue: q}, &created))
	return created, err
}

// DeleteQueue deletes a queue without members.
func (d *Distributor) DeleteQueue(ctx context.Context, name string) error {
	members, err := d.cfg.Store.Members(ctx, name)
	if err != nil {
		return err
	}
	if len(members) > 0 {
		return fmt.Errorf("queue %s has %d callers: %w", name, len(members), ErrInUse)
	}
	_, err = d.change(ctx, "queue", name, d.existingQueue(ctx, name), fixed(domain.QueueDeleted, struct{}{}))
	return err
}

// SetTier puts an agent in a queue.
func (d *Distributor) SetTier(ctx context.Context, t domain.Tier) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := d.Steady(ctx); err != nil {
		return err
	}
	if err := d.trusted(ctx, func() error { _, err := d.cfg.Store.Agent(ctx, t.Agent); return err }); err != nil {
		return err
	}
	_, err := d.change(ctx, "queue", t.Queue, d.existingQueue(ctx, t.Queue),
		fixed(domain.TierSet, domain.TierData{Agent: t.Agent, Level: t.Level, Position: t.Position}))
	return err
}

// RemoveTier takes an agent out of a queue.
func (d *Distributor) RemoveTier(ctx context.Context, queue, agent string) error {
	_, err := d.change(ctx, "queue", queue, d.existingQueue(ctx, queue), fixed(domain.TierRemoved, domain.TierData{Agent: agent}))
	return err
}

// PutAgent creates or replaces an agent's configuration.
func (d *Distributor) PutAgent(ctx context.Context, a domain.Agent) (created bool, err error) {
	if err := a.Validate(); err != nil {
		return false, err
	}
	_, err = d.change(ctx, "agent", a.ID, func() (int64, error) { return d.agentVersion(ctx, a.ID) },
		createdOrUpdated(domain.AgentCreated, domain.AgentUpdated, domain.AgentData{Agent: a}, &created))
	return created, err
}

// DeleteAgent deletes an agent that is not in a call.
func (d *Distributor) DeleteAgent(ctx context.Context, id string) error {
	_, err := d.change(ctx, "agent", id, func() (int64, error) {
		a, err := d.cfg.Store.Agent(ctx, id)
		if err != nil {
			return 0, err
		}
		if a.State == domain.StateOffered || a.State == domain.StateInCall {
			return 0, fmt.Errorf("agent %s is %s: %w", id, a.State, ErrInUse)
		}
		return int64(a.Version), nil
	}, fixed(domain.AgentDeleted, struct{}{}))
	return err
}

// SetStatus logs an agent in or out or puts it on a break.
func (d *Distributor) SetStatus(ctx context.Context, id, status, reason string) error {
	switch status {
	case domain.StatusAvailable, domain.StatusOnBreak, domain.StatusLoggedOut:
	default:
		return &domain.FieldError{Field: "status", Problem: fmt.Sprintf("%q: want available, on_break or logged_out", status)}
	}
	// The first try appends after the version this instance last applied
	// (no Redis read on the way to the agent's ring); when the log has
	// moved on, the append conflicts and the retry reads the projection.
	remembered := true
	_, err := d.change(ctx, "agent", id, func() (int64, error) {
		v, err := d.cfg.Store.AgentVersion(ctx, id, remembered)
		remembered = false
		return int64(v), err
	}, func(int64) (string, any) {
		// Stamped per attempt: a retry after a conflict is a new decision.
		return domain.AgentStatusChanged, domain.StatusData{Status: status, Reason: reason, At: now().UnixMilli()}
	})
	return err
}

// Join puts a call in a queue (idempotent: joining again is a no-op
// that returns the member as it is).
func (d *Distributor) Join(ctx context.Context, m domain.Member) (projection.MemberView, error) {
	if err := m.Validate(); err != nil {
		return projection.MemberView{}, err
	}
	if err := d.Steady(ctx); err != nil {
		return projection.MemberView{}, err
	}
	if cur, err := d.cfg.Store.Member(ctx, m.CallID); err == nil {
		return cur, nil
	}
	var q projection.QueueView
	if err := d.trusted(ctx, func() (err error) { q, err = d.cfg.Store.Queue(ctx, m.Queue); return err }); err != nil {
		return projection.MemberView{}, err
	}
	if q.AbandonedResumeAllowed && m.CallerNumber != "" && m.JoinedAt == 0 {
		// The same number hung up while waiting a moment ago: it takes
		// its place in line again (mod_callcenter's abandoned-resume).
		if at, ok, err := d.cfg.Store.TakePlace(ctx, m.Queue, m.CallerNumber); err != nil {
			d.log.Warn("cannot look up a held place", "callid", m.CallID, "err", err)
		} else if ok {
			m.JoinedAt = at
			d.log.Info("caller resumes their place", "callid", m.CallID, "queue", m.Queue, "joined_ms", at)
		}
	}
	if m.JoinedAt == 0 {
		m.JoinedAt = now().UnixMilli()
	}
	if m.MaxWait == 0 {
		m.MaxWait = q.MaxWaitSeconds
	}
	// Nobody logged in: the caller is told at once, unless the queue
	// lets callers wait for agents (max_wait_with_no_agent; Waiting ends
	// their wait).
	if in, err := d.cfg.Store.LoggedIn(ctx, m.Queue); err != nil {
		return projection.MemberView{}, err
	} else if !in && q.MaxWaitNoAgentSeconds == 0 {
		return projection.MemberView{}, fmt.Errorf("queue %s: %w", m.Queue, ErrNoAgents)
	}
	// The id is this join's: a call that left one queue may be queued
	// again (by its policy, in another queue or the same), and a join
	// under the call's id alone would be dropped as a duplicate.
	if _, err := d.append(ctx, fmt.Sprintf("join-%s-%d", m.CallID, m.JoinedAt), domain.MemberJoined, m.Queue, m.CallID, domain.MemberData{Member: m}, eventlog.Any); err != nil {
		return projection.MemberView{}, err
	}
	if q.MOHSound != "" {
		go func() {
			// The caller hears music until an agent answers or it leaves;
			// the reply comes when the playback ends, which may be never.
			if err := d.cfg.Gateway.Call(context.Background(), m.CallID, "execute", "playback", q.MOHSound, time.Hour); err != nil {
				d.log.Debug("music on hold ended", "callid", m.CallID, "err", err)
			}
		}()
	}
	return d.cfg.Store.Member(ctx, m.CallID)
}

// finishMember ends a member's time in its queue with typ (abandoned or
// exited) and tells its caller side.
func (d *Distributor) finishMember(ctx context.Context, m projection.MemberView, typ string, data domain.MemberEndData, out Outcome) error {
	data.CallID, data.WaitMS, data.At = m.CallID, now().UnixMilli()-m.JoinedAt, now().UnixMilli()
	// Once per join: the call may be queued again later.
	if _, err := d.append(ctx, fmt.Sprintf("%s-%s-%d", typ, m.CallID, m.JoinedAt), typ, m.Queue, m.CallID, data, eventlog.Any); err != nil {
		return err
	}
	// The projection keeps the outcome, and an abandoned caller's place,
	// from the event (apply of the member's end).
	out.Queue, out.WaitSeconds = m.Queue, float64(data.WaitMS)/1000
	d.cfg.Notify.Outcome(m.CallID, out)
	return nil
}

func newID() string {
	var b [16]byte
	randRead(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
