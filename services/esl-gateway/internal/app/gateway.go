// Package app holds the gateway's use cases: taking a call handed over by
// the dialplan, turning its life into call.* events, driving it on request
// (callctl), originating calls and hanging them up.
package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/events"
)

// EventLog stores events in order per key (adapters/eventlog).
type EventLog interface {
	Append(key, subject string, env *events.Envelope, stored func())
}

// Nodes runs api commands on FreeSWITCH nodes (adapters/freeswitch).
type Nodes interface {
	Exec(ctx context.Context, node, cmd string, background bool) (string, error)
	Names() []string
	Has(name string) bool
}

// CommandRouter delivers callctl.<uuid> requests to a handler until stop
// is called (ports/natsrpc).
type CommandRouter interface {
	Serve(callID string, h func(ctx context.Context, req []byte) []byte) (stop func(), err error)
}

// Hooks report to metrics; all optional.
type Hooks struct {
	SessionStarted func(setup time.Duration) // accept → call.started stored
	SessionEnded   func()
	Command        func(name string, d time.Duration, err error)
	Refused        func(reason string)
	FrameRejected  func(reason string) // a session closed for a bad ESL frame
	Originated     func(result string) // "ok" or the failure's code (user_busy, …)
}

// Config wires a Gateway.
type Config struct {
	Instance string // names this gateway in events
	Logger   *slog.Logger
	Events   EventLog
	Nodes    Nodes
	Router   CommandRouter
	NATSUp   func() bool
	Hooks    Hooks
}

// Gateway is the esl-gateway's application core.
type Gateway struct {
	cfg    Config
	source string

	mu    sync.Mutex
	calls map[string]*Call
}

// New builds the gateway core.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NATSUp == nil {
		cfg.NATSUp = func() bool { return true }
	}
	return &Gateway{cfg: cfg, source: "switchyard/esl-gateway/" + cfg.Instance, calls: map[string]*Call{}}
}

// Call is one live socket session.
type Call struct {
	ID        string    `json:"call_id"`
	Node      string    `json:"node"`
	Caller    string    `json:"caller_id_number"`
	Dest      string    `json:"destination_number"`
	Mode      string    `json:"socket_mode"`
	StartedAt time.Time `json:"started_at"`
	Answered  bool      `json:"answered"`

	sess     *esl.Session
	mu       sync.Mutex
	hung     bool          // call.hangup published
	hangupEv *esl.Event    // CHANNEL_HANGUP, in case CHANNEL_HANGUP_COMPLETE never comes
	ready    chan struct{} // closed once the call's events are subscribed
	vars     map[string]string
}

// Calls lists live sessions.
func (g *Gateway) Calls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Call, 0, len(g.calls))
	for _, c := range g.calls {
		c.mu.Lock()
		out = append(out, Call{ID: c.ID, Node: c.Node, Caller: c.Caller, Dest: c.Dest, Mode: c.Mode, StartedAt: c.StartedAt, Answered: c.Answered})
		c.mu.Unlock()
	}
	return out
}

func (g *Gateway) call(id string) *Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

// ActiveSessions is the number of live sessions.
func (g *Gateway) ActiveSessions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func (g *Gateway) logger(c *Call) *slog.Logger {
	return g.cfg.Logger.With("callid", c.ID, "node", c.Node)
}
