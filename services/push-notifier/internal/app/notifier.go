// Package app is the push-notifier's use case: take a push request to a
// user, push it to each of the user's devices exactly once — or not at
// all when in doubt — retrying what the provider asks to retry within the
// push's expiry, forgetting dead tokens, and reporting every outcome as
// an event.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/metrics"
)

// Sender is one push provider (APNs, FCM).
type Sender interface {
	Send(ctx context.Context, p domain.Push) domain.Answer
	RefreshAuth()
}

// Devices is the device registry.
type Devices interface {
	Devices(ctx context.Context, user string) ([]domain.Device, error)
	Remove(ctx context.Context, user, token string) (bool, error)
}

// Ledger is the idempotency record.
type Ledger interface {
	Load(ctx context.Context, requestID string) (map[string]domain.Mark, error)
	Claim(ctx context.Context, requestID, field, owner string, until, requestExpiry time.Time) (domain.Mark, bool, error)
	Record(ctx context.Context, requestID, field string, o domain.Outcome, requestExpiry time.Time) (domain.Mark, bool, error)
	Finish(ctx context.Context, requestID, field string, claim domain.Mark, o domain.Outcome) (bool, error)
	Release(ctx context.Context, requestID, field string, claim domain.Mark) error
}

// Limiter is the per-user rate limit.
type Limiter interface {
	Allow(ctx context.Context, user, requestID string) (bool, error)
}

// Intake takes a fresh request in at once: when request id has no record
// yet, it reads the user's devices, admits the request against the rate
// limit and claims every device for owner, in one step. ok false: it did
// nothing, and the request takes the step-by-step path.
type Intake interface {
	Begin(ctx context.Context, requestID, user, owner string, until, requestExpiry time.Time) (domain.Started, bool, error)
}

// Publisher stores events.
type Publisher interface {
	Publish(ctx context.Context, subject string, e *events.Envelope) error
}

// Config tunes the notifier.
type Config struct {
	// Owner names this process in claims; unique per process start.
	Owner string
	// Source is the events' source, switchyard/push-notifier/<instance>.
	Source string
	// AttemptTimeout bounds one send (default 5 s).
	AttemptTimeout time.Duration
	// MaxRetryWindow bounds retries of a push with a long expiry
	// (default 2 min).
	MaxRetryWindow time.Duration
}

// Notifier handles push requests.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	devices Devices
	ledger  Ledger
	limiter Limiter
	intake  Intake // nil: every request takes the step-by-step path
	pub     Publisher
	senders map[string]Sender // platform → sender; a nil entry means not configured
	names   map[string]string // platform → provider name for metrics
	m       *metrics.Metrics
	now     func() time.Time
}

// New builds a notifier. senders maps domain.IOS / domain.Android to a
// provider; a missing one fails those pushes with no_provider.
func New(cfg Config, log *slog.Logger, d Devices, l Ledger, lim Limiter, pub Publisher, senders map[string]Sender, m *metrics.Metrics) *Notifier {
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 5 * time.Second
	}
	if cfg.MaxRetryWindow <= 0 {
		cfg.MaxRetryWindow = 2 * time.Minute
	}
	return &Notifier{cfg: cfg, log: log, devices: d, ledger: l, limiter: lim, pub: pub, senders: senders,
		names: map[string]string{domain.IOS: "apns", domain.Android: "fcm"}, m: m, now: time.Now}
}

// WithIntake has fresh requests taken in by i in one step (devices, rate
// limit and claims) instead of three; a request i does not take takes the
// step-by-step path.
func (n *Notifier) WithIntake(i Intake) *Notifier {
	n.intake = i
	return n
}

// Disposition says what to do with the message that carried a request.
type Disposition struct {
	// Later: ack nothing yet, deliver again after Delay (another
	// instance holds a claim, or shutdown interrupted the retries).
	Later bool
	Delay time.Duration
}

// errInterrupted: shutdown stopped a push between attempts; its claim was
// released.
var errInterrupted = errors.New("interrupted before the push was accepted")

// Handle pushes r to each of the user's devices. An error means a
// dependency (Redis, NATS) failed: deliver the message again later.
func (n *Notifier) Handle(ctx context.Context, r domain.Request, raw []byte) (Disposition, error) {
	log := n.log.With("request_id", r.ID, "user", r.User, "type", r.Type)
	if r.CallID != "" {
		log = log.With("callid", r.CallID)
	}
	if n.intake != nil && !r.Expired(n.now()) {
		// The usual first delivery: devices, limit and claims in one
		// round trip.
		started, ok, err := n.intake.Begin(ctx, r.ID, r.User, n.cfg.Owner, r.ExpiresAt.Add(n.cfg.AttemptTimeout), r.ExpiresAt)
		if err != nil {
			return Disposition{}, err
		}
		if ok {
			st := newState()
			if err := n.pushAll(ctx, r, started.Devices, started.Claims, st, log); err != nil {
				return Disposition{}, err
			}
			return n.settleRequest(ctx, r, st, false, raw, log)
		}
	}
	// The record and the devices in parallel: one round trip to Redis
	// on the way to the push.
	var devs []domain.Device
	derr := make(chan error, 1)
	go func() {
		var err error
		devs, err = n.devices.Devices(ctx, r.User)
		derr <- err
	}()
	marks, err := n.ledger.Load(ctx, r.ID)
	if err2 := <-derr; err == nil {
		err = err2
	}
	if err != nil {
		return Disposition{}, err
	}
	if m, ok := marks[domain.RequestField]; ok && m.Outcome != nil {
		n.m.Requests.WithLabelValues("duplicate").Inc()
		return Disposition{}, n.publishRequestFailure(ctx, r, *m.Outcome, raw)
	}
	now := n.now()
	st := newState()
	var pending []domain.Device
	known := map[string]bool{}
	for _, d := range devs {
		known[d.ID] = true
		m, ok := marks[d.ID]
		if !ok {
			pending = append(pending, d)
			continue
		}
		if err := n.settle(ctx, r, d.ID, m, now, st); err != nil {
			return Disposition{}, err
		}
	}
	for field, m := range marks { // devices forgotten since (a dead token)
		if field != domain.RequestField && !known[field] {
			if err := n.settle(ctx, r, field, m, now, st); err != nil {
				return Disposition{}, err
			}
		}
	}
	nothingYet := len(st.outcomes) == 0 && st.waitUntil.IsZero()
	switch {
	case len(devs) == 0 && nothingYet:
		return Disposition{}, n.failRequest(ctx, r, domain.ReasonNoDevices, "the user has no registered device", raw, log)
	case len(pending) > 0 && r.Expired(now) && nothingYet:
		return Disposition{}, n.failRequest(ctx, r, domain.ReasonExpired, fmt.Sprintf("expired at %s, %v before it was handled", r.ExpiresAt.Format(time.RFC3339Nano), now.Sub(r.ExpiresAt).Round(time.Millisecond)), raw, log)
	case len(pending) > 0:
		ok, err := n.limiter.Allow(ctx, r.User, r.ID)
		if err != nil {
			return Disposition{}, err
		}
		if !ok && nothingYet {
			return Disposition{}, n.failRequest(ctx, r, domain.ReasonRateLimited, "the user's push rate limit is reached", raw, log)
		}
		if err := n.pushAll(ctx, r, pending, nil, st, log); err != nil {
			return Disposition{}, err
		}
	}
	return n.settleRequest(ctx, r, st, len(pending) == 0, raw, log)
}

// settleRequest ends a delivery: later again while a push is unsettled,
// else the outcomes published and the request counted. duplicate: this
// delivery pushed nothing.
func (n *Notifier) settleRequest(ctx context.Context, r domain.Request, st *state, duplicate bool, raw []byte, log *slog.Logger) (Disposition, error) {
	if st.interrupted {
		return Disposition{Later: true, Delay: time.Second}, nil
	}
	if !st.waitUntil.IsZero() {
		return Disposition{Later: true, Delay: min(max(st.waitUntil.Sub(n.now()), 100*time.Millisecond), 5*time.Second)}, nil
	}
	if err := n.publishOutcomes(ctx, r, st.outcomes); err != nil {
		return Disposition{}, err
	}
	return Disposition{}, n.finishRequest(ctx, r, st.outcomes, duplicate, raw, log)
}

// state collects a request's device outcomes.
type state struct {
	mu          sync.Mutex
	outcomes    map[string]domain.Outcome // device id → outcome
	waitUntil   time.Time                 // latest lease of a live claim by someone else
	interrupted bool
}

func newState() *state { return &state{outcomes: map[string]domain.Outcome{}} }

func (s *state) set(id string, o domain.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[id] = o
}

// settle reads a mark found in the record: an outcome is taken as is; a
// claim whose lease runs is waited for; a claim whose lease ended is in
// doubt — its owner died between claiming and recording — and becomes a
// failure without a push.
func (n *Notifier) settle(ctx context.Context, r domain.Request, id string, m domain.Mark, now time.Time, st *state) error {
	switch {
	case m.State == domain.Done && m.Outcome != nil:
		st.set(id, *m.Outcome)
	case m.State == domain.Claimed && now.Before(m.Until):
		st.mu.Lock()
		if m.Until.After(st.waitUntil) {
			st.waitUntil = m.Until
		}
		st.mu.Unlock()
	default:
		o := domain.Outcome{Result: domain.ResultFailed, Reason: domain.ReasonInDoubt, DeviceID: id, At: now.UTC(),
			Detail: fmt.Sprintf("instance %s claimed this push and did not record its outcome; it may have been delivered, so it is not sent again", m.Owner)}
		if _, err := n.ledger.Finish(ctx, r.ID, id, m, o); err != nil {
			return err
		}
		n.log.Warn("push in doubt: not sent again", "request_id", r.ID, "user", r.User, "device", id, "claimed_by", m.Owner)
		st.set(id, o)
	}
	return nil
}

// pushAll pushes to devs at once; claims holds those already claimed
// (the others are claimed first).
func (n *Notifier) pushAll(ctx context.Context, r domain.Request, devs []domain.Device, claims map[string]domain.Mark, st *state, log *slog.Logger) error {
	n.m.InFlight.Inc()
	defer n.m.InFlight.Dec()
	if len(devs) == 1 { // the usual case: no goroutine
		return n.pushOne(ctx, r, devs[0], claims, st, log)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(devs))
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.pushOne(ctx, r, d, claims, st, log)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pushOne claims the device's push (unless claims has it), sends it with
// retries and records the outcome in place of the claim.
func (n *Notifier) pushOne(ctx context.Context, r domain.Request, d domain.Device, claims map[string]domain.Mark, st *state, log *slog.Logger) error {
	log = log.With("device", d.ID, "platform", d.Platform, "environment", d.Environment)
	claim, ok := claims[d.ID]
	if !ok {
		var err error
		claim, ok, err = n.ledger.Claim(ctx, r.ID, d.ID, n.cfg.Owner, r.ExpiresAt.Add(n.cfg.AttemptTimeout), r.ExpiresAt)
		if err != nil {
			return err
		}
		if !ok { // another instance got there between our read and our claim
			return n.settle(ctx, r, d.ID, claim, n.now(), st)
		}
	}
	o, err := n.send(ctx, r, d, log)
	if errors.Is(err, errInterrupted) {
		// Nothing was accepted (every answer so far said retry): give
		// the push back for whoever gets the message next.
		if rerr := n.ledger.Release(context.WithoutCancel(ctx), r.ID, d.ID, claim); rerr != nil {
			log.Warn("claim not released; the push will be in doubt", "err", rerr)
		}
		st.mu.Lock()
		st.interrupted = true
		st.mu.Unlock()
		return nil
	}
	o.DeviceID, o.Platform, o.Environment, o.At = d.ID, d.Platform, d.Environment, n.now().UTC()
	if o.TokenRemoved {
		removed, rerr := n.devices.Remove(context.WithoutCancel(ctx), r.User, d.Token)
		if rerr != nil {
			log.Error("dead token not removed", "err", rerr)
		}
		o.TokenRemoved = removed
		if removed {
			n.m.TokensRemoved.WithLabelValues(n.names[d.Platform], o.Reason).Inc()
		}
	}
	ok, err = n.ledger.Finish(context.WithoutCancel(ctx), r.ID, d.ID, claim, o)
	if err != nil {
		// The claim stays: a redelivery will call this push in doubt,
		// which is true from the ledger's point of view.
		return err
	}
	if !ok {
		log.Warn("claim vanished before the outcome was recorded (Redis flushed?)")
	}
	st.set(d.ID, o)
	return nil
}

// send makes attempts until an answer settles the push or the retry
// window ends.
func (n *Notifier) send(ctx context.Context, r domain.Request, d domain.Device, log *slog.Logger) (domain.Outcome, error) {
	s := n.senders[d.Platform]
	if s == nil {
		return domain.Outcome{Result: domain.ResultFailed, Reason: domain.ReasonNoProvider, Detail: "no " + n.names[d.Platform] + " credentials configured"}, nil
	}
	provider := n.names[d.Platform]
	if r.Expired(n.now()) {
		return domain.Outcome{Result: domain.ResultFailed, Reason: domain.ReasonExpired, Detail: "expired before the first attempt"}, nil
	}
	deadline := r.ExpiresAt
	if w := n.now().Add(n.cfg.MaxRetryWindow); w.Before(deadline) {
		deadline = w
	}
	p := domain.Push{Request: r, Device: d, MessageID: domain.MessageID(r.ID, d.ID)}
	refreshed := false
	var last domain.Answer
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return domain.Outcome{}, errInterrupted
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.AttemptTimeout)
		a := s.Send(actx, p)
		cancel()
		last = a
		n.m.Attempts.WithLabelValues(provider, a.Verdict.String()).Inc()
		n.m.AttemptTime.WithLabelValues(provider).Observe(a.Latency.Seconds())
		o := domain.Outcome{Status: a.Status, Attempts: attempt, Reason: a.Reason}
		switch a.Verdict {
		case domain.Delivered:
			since := n.now().Sub(r.RequestedAt)
			n.m.Delivery.WithLabelValues(provider).Observe(since.Seconds())
			o.Result, o.Reason, o.ProviderID = domain.ResultSent, "", a.ProviderID
			o.LatencyMS, o.SinceRequestMS = ms(a.Latency), ms(since)
			log.Info("push sent", "provider_id", a.ProviderID, "attempts", attempt, "latency_ms", o.LatencyMS)
			return o, nil
		case domain.TokenDead:
			o.Result, o.TokenRemoved, o.UnregisteredAt = domain.ResultFailed, true, a.UnregisteredAt
			log.Info("device token is dead; forgetting it", "status", a.Status, "reason", a.Reason)
			return o, nil
		case domain.Rejected:
			o.Result = domain.ResultFailed
			log.Warn("push rejected", "status", a.Status, "reason", a.Reason)
			return o, nil
		case domain.InDoubt:
			o.Result, o.Reason, o.Detail = domain.ResultFailed, domain.ReasonInDoubt, a.Reason
			log.Warn("push in doubt: no answer, not retried", "err", a.Reason)
			return o, nil
		case domain.RefreshAuth:
			if !refreshed {
				refreshed = true
				s.RefreshAuth()
				log.Warn("provider credentials refused; renewing them", "status", a.Status, "reason", a.Reason)
				continue
			}
			o.Result = domain.ResultFailed
			return o, nil
		}
		// Retry.
		wait := domain.Backoff(attempt, a.RetryAfter)
		if !n.now().Add(wait).Before(deadline) {
			log.Warn("push not accepted before its expiry", "status", last.Status, "reason", last.Reason, "attempts", attempt)
			return domain.Outcome{Result: domain.ResultFailed, Reason: domain.ReasonExpired, Status: last.Status, Attempts: attempt,
				Detail: "last answer: " + describe(last)}, nil
		}
		log.Debug("push to retry", "status", a.Status, "reason", a.Reason, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return domain.Outcome{}, errInterrupted
		case <-t.C:
		}
	}
}

func describe(a domain.Answer) string {
	if a.Status == 0 {
		return a.Reason
	}
	return fmt.Sprintf("%d %s", a.Status, a.Reason)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// failRequest records a failure of the whole request, publishes it and
// dead-letters the request.
func (n *Notifier) failRequest(ctx context.Context, r domain.Request, reason, detail string, raw []byte, log *slog.Logger) error {
	o := domain.Outcome{Result: domain.ResultFailed, Reason: reason, Detail: detail, At: n.now().UTC()}
	m, _, err := n.ledger.Record(ctx, r.ID, domain.RequestField, o, r.ExpiresAt)
	if err != nil {
		return err
	}
	if m.Outcome != nil {
		o = *m.Outcome
	}
	log.Warn("push request failed", "reason", o.Reason, "detail", o.Detail)
	n.m.Requests.WithLabelValues(o.Reason).Inc()
	n.m.DeadLetters.WithLabelValues(o.Reason).Inc()
	return n.publishRequestFailure(ctx, r, o, raw)
}

func (n *Notifier) publishRequestFailure(ctx context.Context, r domain.Request, o domain.Outcome, raw []byte) error {
	err := n.emit(ctx, r, r.ID+".failed", "failed", domain.TypeFailed, domain.FailedData{
		RequestID: r.ID, User: r.User, CallID: r.CallID, Type: r.Type, Reason: o.Reason, Detail: o.Detail,
	})
	if err != nil {
		return err
	}
	return n.emit(ctx, r, r.ID+".deadletter", "deadletter", domain.TypeDeadLettered, domain.DeadLetterData{
		RequestID: r.ID, User: r.User, CallID: r.CallID, Reason: o.Reason, Detail: o.Detail, Request: raw,
	})
}

// publishOutcomes publishes each device's events. Their ids derive from
// the request and the device, so a redelivery publishes the same events
// and JetStream stores them once.
func (n *Notifier) publishOutcomes(ctx context.Context, r domain.Request, outcomes map[string]domain.Outcome) error {
	ids := make([]string, 0, len(outcomes))
	for id := range outcomes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o := outcomes[id]
		base := r.ID + "." + id
		if o.Result == domain.ResultSent {
			d := domain.SentData{RequestID: r.ID, User: r.User, CallID: r.CallID, Type: r.Type, DeviceID: id, Platform: o.Platform,
				Environment: o.Environment, LatencyMS: o.LatencyMS, SinceRequestMS: o.SinceRequestMS, Attempts: o.Attempts}
			if o.Platform == domain.Android {
				d.FCMMessage = o.ProviderID
			} else {
				d.APNsID = o.ProviderID
			}
			if err := n.emit(ctx, r, base+".sent", "sent", domain.TypeSent, d); err != nil {
				return err
			}
			continue
		}
		if o.TokenRemoved {
			err := n.emit(ctx, r, base+".token_removed", "token.removed", domain.TypeTokenRemoved, domain.TokenRemovedData{
				User: r.User, DeviceID: id, Platform: o.Platform, Environment: o.Environment, Reason: o.Reason, RequestID: r.ID, UnregisteredAt: o.UnregisteredAt,
			})
			if err != nil {
				return err
			}
		}
		err := n.emit(ctx, r, base+".failed", "failed", domain.TypeFailed, domain.FailedData{
			RequestID: r.ID, User: r.User, CallID: r.CallID, Type: r.Type, DeviceID: id, Platform: o.Platform, Environment: o.Environment,
			Reason: o.Reason, Detail: o.Detail, Status: o.Status, Attempts: o.Attempts,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// finishRequest counts the request and dead-letters it when no device
// took the push.
func (n *Notifier) finishRequest(ctx context.Context, r domain.Request, outcomes map[string]domain.Outcome, duplicate bool, raw []byte, log *slog.Logger) error {
	reasons := map[string]string{}
	for id, o := range outcomes {
		if o.Result == domain.ResultSent {
			if duplicate {
				n.m.Requests.WithLabelValues("duplicate").Inc()
			} else {
				n.m.Requests.WithLabelValues("delivered").Inc()
			}
			return nil
		}
		reasons[id] = o.Reason
	}
	reason := ""
	for _, rs := range reasons {
		if reason == "" || reason == rs {
			reason = rs
		} else {
			reason = domain.ReasonUndeliverable
		}
	}
	if duplicate {
		n.m.Requests.WithLabelValues("duplicate").Inc()
	} else {
		n.m.Requests.WithLabelValues("failed").Inc()
		n.m.DeadLetters.WithLabelValues(reason).Inc()
		log.Warn("push request undeliverable: dead-lettered", "reason", reason, "devices", reasons)
	}
	return n.emit(ctx, r, r.ID+".deadletter", "deadletter", domain.TypeDeadLettered, domain.DeadLetterData{
		RequestID: r.ID, User: r.User, CallID: r.CallID, Reason: reason, Devices: reasons, Request: raw,
	})
}

func (n *Notifier) emit(ctx context.Context, r domain.Request, id, event, typ string, data any) error {
	subject := "push." + r.User + "." + event
	e, err := events.New(id, n.cfg.Source, typ, subject, r.CallID, data)
	if err != nil {
		return err
	}
	return n.pub.Publish(context.WithoutCancel(ctx), subject, e)
}

// Abandon fails a valid request without pushing (it was delivered too
// often: something keeps failing on it) and dead-letters it.
func (n *Notifier) Abandon(ctx context.Context, r domain.Request, raw []byte, reason, detail string) error {
	log := n.log.With("request_id", r.ID, "user", r.User)
	return n.failRequest(ctx, r, reason, detail, raw, log)
}

// InvalidRequest dead-letters a message that is not a valid push
// request; user is the subject's (may be ""), id names the message.
func (n *Notifier) InvalidRequest(ctx context.Context, user, id string, raw []byte, problem error) error {
	n.m.Requests.WithLabelValues("invalid").Inc()
	n.m.DeadLetters.WithLabelValues(domain.ReasonInvalid).Inc()
	n.log.Warn("invalid push request dead-lettered", "user", user, "event_id", id, "err", problem)
	if domain.ValidUser("user", user) != nil {
		user = "_invalid"
	}
	r := domain.Request{ID: id, User: user}
	if err := n.emit(ctx, r, id+".failed", "failed", domain.TypeFailed, domain.FailedData{RequestID: id, User: user, Reason: domain.ReasonInvalid, Detail: problem.Error()}); err != nil {
		return err
	}
	return n.emit(ctx, r, id+".deadletter", "deadletter", domain.TypeDeadLettered, domain.DeadLetterData{RequestID: id, User: user, Reason: domain.ReasonInvalid, Detail: problem.Error(), Request: raw})
}
