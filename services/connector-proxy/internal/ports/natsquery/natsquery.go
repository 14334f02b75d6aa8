// Package natsquery serves connector.query over NATS request-reply
// (docs/events.md, "connector.query"): every proxy instance subscribes in
// the queue group connector-proxy, each request is answered in its own
// goroutine (a slow upstream never holds up a cache hit), up to a maximum
// in progress beyond which requests are refused at once as overloaded.
package natsquery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/app"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/metrics"
)

// Subject and queue group of the contract.
const (
	Subject    = "connector.query"
	QueueGroup = "connector-proxy"
)

// Querier answers a validated request (the engine).
type Querier interface {
	Query(ctx context.Context, req *domain.Request) app.Reply
}

// Server answers connector.query.
type Server struct {
	NC              *nats.Conn
	Engine          Querier
	Log             *slog.Logger
	Metrics         *metrics.Metrics
	MaxRequestBytes int // bodies beyond it are refused
	MaxPending      int // requests in progress beyond it are refused (overloaded)

	sem chan struct{}
	wg  sync.WaitGroup
	sub *nats.Subscription
}

// Start subscribes.
func (s *Server) Start() error {
	if s.MaxPending <= 0 {
		s.MaxPending = 4096
	}
	if s.MaxRequestBytes <= 0 {
		s.MaxRequestBytes = 64 << 10
	}
	s.sem = make(chan struct{}, s.MaxPending)
	sub, err := s.NC.QueueSubscribe(Subject, QueueGroup, s.receive)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", Subject, err)
	}
	// Requests are taken off the subscription at once (a goroutine each),
	// so its buffer only absorbs bursts; it is generous so that a burst is
	// answered "overloaded" rather than dropped as a slow consumer.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	s.sub = sub
	return nil
}

// Stop stops taking requests and waits (until ctx ends) for those in
// progress to be answered.
func (s *Server) Stop(ctx context.Context) error {
	if s.sub != nil {
		_ = s.sub.Drain()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("connector.query: requests still in progress at the end of the grace period")
	}
}

func (s *Server) receive(m *nats.Msg) {
	if m.Reply == "" {
		return // a publish, not a request: nobody to answer
	}
	arrived := time.Now()
	if len(m.Data) > s.MaxRequestBytes {
		s.respond(m, s.answer(m.Data, arrived)) // refused at once, without a goroutine
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.Metrics.Requests.WithLabelValues("unknown", "unknown", domain.OutcomeBulkheadFull).Inc()
		s.respond(m, app.Reply{Error: domain.Errorf(domain.CodeOverloaded, "this connector-proxy has %d requests in progress, its maximum", s.MaxPending)})
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		s.respond(m, s.answer(m.Data, arrived))
	}()
}

// Handle is the work of one request without the NATS transport: the
// encoded reply to a request body (benchmarks measure the proxy's own
// cost with it).
func (s *Server) Handle(body []byte) []byte { return s.encode(s.answer(body, time.Now())) }

// answer parses, validates and serves one request.
func (s *Server) answer(body []byte, arrived time.Time) app.Reply {
	req, err := domain.ParseRequest(body, s.MaxRequestBytes)
	if err != nil {
		s.Metrics.Requests.WithLabelValues("unknown", "unknown", domain.OutcomeInvalid).Inc()
		return app.Reply{Error: domain.AsError(err), TookMS: float64(time.Since(arrived).Microseconds()) / 1000}
	}
	return s.Engine.Query(context.Background(), &req)
}

func (s *Server) respond(m *nats.Msg, rep app.Reply) {
	if err := m.Respond(s.encode(rep)); err != nil {
		s.Log.Warn("connector.query reply not sent", "err", err)
	}
}

func (s *Server) encode(rep app.Reply) []byte {
	b, err := json.Marshal(rep)
	if err != nil {
		// A result is JSON the engine checked; this cannot happen, but a
		// caller must never be left without an answer.
		b, _ = json.Marshal(app.Reply{Error: domain.Errorf(domain.CodeUpstreamError, "the answer could not be encoded: %v", err)})
	}
	if max := s.NC.MaxPayload(); int64(len(b)) > max {
		b, _ = json.Marshal(app.Reply{Error: domain.Errorf(domain.CodeResultTooLarge, "the answer has %d bytes, more than NATS' max_payload of %d; select fewer fields or records", len(b), max)})
	}
	return b
}
