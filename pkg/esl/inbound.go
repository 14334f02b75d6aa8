package esl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrNotConnected: the node is between connections; commands fail at once
// instead of waiting for a reconnect.
var ErrNotConnected = errors.New("esl: not connected")

// Backoff spaces reconnect attempts: exponential from Min to Max, each
// delay drawn from its upper half ("equal jitter") so a fleet of gateways
// does not reconnect in step after FreeSWITCH restarts.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max < b.Min {
		b.Max = max(10*time.Second, b.Min)
	}
	return b
}

// Delay is the wait before attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := b.Max
	if n < 30 {
		d = min(b.Max, b.Min<<n)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// InboundConfig describes one FreeSWITCH node to keep a connection to.
type InboundConfig struct {
	Addr     string
	Password string
	Options  ConnOptions
	Backoff  Backoff
	// DialTimeout bounds one dial and handshake. Default 5s.
	DialTimeout time.Duration
	// OnConnect runs on each new connection before callers see it:
	// subscriptions and filters are set again here, so they survive
	// reconnects. An error drops the connection and retries.
	OnConnect func(ctx context.Context, c *Client) error
	// OnStateChange is told whenever the connection comes or goes.
	OnStateChange func(InboundState)
}

// InboundState is a node's connection as an operator sees it.
type InboundState struct {
	Connected bool
	Since     time.Time // when it last connected or disconnected
	Attempts  int       // failed attempts since the last success
	LastError string    // why the last attempt or connection failed
}

// Inbound keeps a Client connected to one node, reconnecting forever with
// backoff until its context ends.
type Inbound struct {
	cfg InboundConfig

	mu     sync.Mutex
	client *Client
	state  InboundState
}

// NewInbound prepares a connection to cfg.Addr; Run makes it.
func NewInbound(cfg InboundConfig) *Inbound {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	return &Inbound{cfg: cfg, state: InboundState{Since: time.Now()}}
}

// Client returns the live connection, or ErrNotConnected (with the last
// failure) at once.
func (in *Inbound) Client() (*Client, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.client == nil {
		if in.state.LastError != "" {
			return nil, fmt.Errorf("%w to %s: %s", ErrNotConnected, in.cfg.Addr, in.state.LastError)
		}
		return nil, fmt.Errorf("%w to %s", ErrNotConnected, in.cfg.Addr)
	}
	return in.client, nil
}

// State reports the connection's state.
func (in *Inbound) State() InboundState {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// Run connects and reconnects until ctx ends; it returns ctx's error.
func (in *Inbound) Run(ctx context.Context) error {
	for attempt := 0; ; {
		c, err := in.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			in.setState(nil, err, attempt+1)
			timer := time.NewTimer(in.cfg.Backoff.Delay(attempt))
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
			attempt++
			continue
		}
		attempt = 0
		in.setState(c, nil, 0)
		select {
		case <-ctx.Done():
			in.setState(nil, nil, 0)
			c.Close()
			return ctx.Err()
		case <-c.Done():
			in.setState(nil, c.Err(), 0)
			c.Close()
		}
	}
}

func (in *Inbound) connect(ctx context.Context) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, in.cfg.DialTimeout)
	defer cancel()
	c, err := Dial(dctx, in.cfg.Addr, in.cfg.Password, in.cfg.Options)
	if err != nil {
		return nil, err
	}
	if in.cfg.OnConnect != nil {
		if err := in.cfg.OnConnect(dctx, c); err != nil {
			c.Close()
			return nil, fmt.Errorf("on connect: %w", err)
		}
	}
	return c, nil
}

func (in *Inbound) setState(c *Client, err error, attempts int) {
	in.mu.Lock()
	in.client = c
	in.state.Connected = c != nil
	in.state.Since = time.Now()
	in.state.Attempts = attempts
	if err != nil {
		in.state.LastError = err.Error()
	}
	st := in.state
	in.mu.Unlock()
	if in.cfg.OnStateChange != nil {
		in.cfg.OnStateChange(st)
	}
}
