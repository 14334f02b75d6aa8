// Package consumer feeds push.requested from the PUSH stream to the
// notifier: one durable consumer shared by every instance (each message
// goes to one of them), a bounded pool of workers, ack when the request
// is settled, redelivery when a dependency failed.
package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/app"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Durable is the consumer's name on PUSH.
const Durable = "push-notifier"

// Subject is what it consumes.
const Subject = "push.*.requested"

// Config of the consumer.
type Config struct {
	Workers    int           // requests handled at once (default 64)
	AckWait    time.Duration // default 30 s; extended while a request is handled
	MaxDeliver int           // deliveries before a request is dead-lettered (default 10)
	Defaults   domain.Defaults
}

// Consumer is the running consumer.
type Consumer struct {
	cfg  Config
	n    *app.Notifier
	log  *slog.Logger
	cc   jetstream.ConsumeContext
	sem  chan struct{}
	wg   sync.WaitGroup
	work context.Context
	stop context.CancelFunc
}

// Start creates or updates the durable consumer and starts consuming.
func Start(ctx context.Context, js jetstream.JetStream, n *app.Notifier, log *slog.Logger, cfg Config) (*Consumer, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 10
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "PUSH", jetstream.ConsumerConfig{
		Durable: Durable, FilterSubjects: []string{Subject},
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait: cfg.AckWait, MaxAckPending: cfg.Workers * 4,
		Description: "push-notifier: push.requested, shared by every instance",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on PUSH: %w", Durable, err)
	}
	c := &Consumer{cfg: cfg, n: n, log: log, sem: make(chan struct{}, cfg.Workers)}
	c.work, c.stop = context.WithCancel(context.Background())
	c.cc, err = cons.Consume(c.dispatch, jetstream.PullMaxMessages(cfg.Workers))
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("consume PUSH: %w", err)
	}
	return c, nil
}

func (c *Consumer) dispatch(m jetstream.Msg) {
	c.sem <- struct{}{}
	c.wg.Add(1)
	go func() {
		defer func() { <-c.sem; c.wg.Done() }()
		c.handle(c.work, m)
	}()
}

// Stop stops fetching, lets the requests in hand finish for grace, then
// interrupts them (their claims are released and the messages handed
// back).
func (c *Consumer) Stop(grace time.Duration) {
	c.cc.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	select {
	case <-c.cc.Closed():
	case <-graceCtx.Done():
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-graceCtx.Done():
		c.log.Warn("pushes still running at the end of the grace period: interrupting them")
		c.stop()
		<-done
	}
	c.stop()
}

func (c *Consumer) handle(ctx context.Context, m jetstream.Msg) {
	raw := m.Data()
	r, err := domain.DecodeRequest(m.Subject(), raw, time.Now(), c.cfg.Defaults)
	if err != nil {
		if err := c.n.InvalidRequest(ctx, domain.SubjectUser(m.Subject()), messageID(raw), raw, err); err != nil {
			c.log.Warn("invalid push request not dead-lettered yet", "subject", m.Subject(), "err", err)
			_ = m.NakWithDelay(time.Second)
			return
		}
		_ = m.Ack()
		return
	}
	if meta, err := m.Metadata(); err == nil && int(meta.NumDelivered) > c.cfg.MaxDeliver {
		if err := c.n.Abandon(ctx, r, raw, domain.ReasonMaxDeliveries, fmt.Sprintf("delivered %d times without being settled", meta.NumDelivered)); err != nil {
			_ = m.NakWithDelay(time.Second)
			return
		}
		_ = m.Ack()
		return
	}
	stop := c.keepAlive(m)
	d, err := c.n.Handle(ctx, r, raw)
	stop()
	switch {
	case err != nil:
		c.log.Warn("push request not settled; it will be delivered again", "request_id", r.ID, "user", r.User, "err", err)
		_ = m.NakWithDelay(time.Second)
	case d.Later:
		_ = m.NakWithDelay(d.Delay)
	default:
		_ = m.Ack()
	}
}

// keepAlive tells JetStream the message is being worked on, so a long
// retry does not get it redelivered elsewhere.
func (c *Consumer) keepAlive(m jetstream.Msg) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(c.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// messageID is the event id of an invalid request, or a digest of it.
func messageID(raw []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &e) == nil && e.ID != "" && len(e.ID) <= 128 && domain.ValidRequestID(e.ID) {
		return e.ID
	}
	sum := sha256.Sum256(raw)
	return "invalid-" + hex.EncodeToString(sum[:12])
}
