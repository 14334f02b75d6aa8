// Package freeswitch keeps the gateway's inbound ESL connections to every
// configured FreeSWITCH node: reconnecting forever, measuring round-trip
// time, running allow-listed api commands, and holding the event
// subscriptions operators add at runtime (re-applied on every reconnect).
package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// Errors callers map to answers.
var (
	ErrUnknownNode = errors.New("unknown FreeSWITCH node")
	ErrNotAllowed  = errors.New("command not in the api allow-list")
	ErrBadEvent    = errors.New("not an event name")
)

// NodeConfig is one FreeSWITCH node.
type NodeConfig struct {
	Name     string
	Addr     string
	Password string
}

// Hooks report to metrics; all optional.
type Hooks struct {
	State func(node string, connected bool)
	RTT   func(node string, d time.Duration)
}

// Status is a node as the admin API shows it.
type Status struct {
	Name          string     `json:"name"`
	Addr          string     `json:"addr"`
	Connected     bool       `json:"connected"`
	Since         time.Time  `json:"since"`
	Attempts      int        `json:"failed_attempts"`
	LastError     string     `json:"last_error,omitempty"`
	RTTMillis     *float64   `json:"rtt_ms,omitempty"`
	LastPing      *time.Time `json:"last_ping,omitempty"`
	Subscriptions []string   `json:"subscriptions"`
}

// Nodes manages every node.
type Nodes struct {
	order  []string
	nodes  map[string]*node
	allow  []string
	bridge func(node string, ev *esl.Event)
	hooks  Hooks
	logger *slog.Logger
	ping   time.Duration
}

type node struct {
	cfg NodeConfig
	in  *esl.Inbound

	mu       sync.Mutex
	subs     []string
	rtt      time.Duration
	lastPing time.Time
}

// Options configure Nodes.
type Options struct {
	// Allow lists the api commands (first word) fs.<node>.api and the
	// admin API may run; "*" allows all.
	Allow []string
	// Subscriptions each node starts with.
	Subscriptions []string
	// Bridge receives every subscribed event (for FSEVENTS).
	Bridge       func(node string, ev *esl.Event)
	Hooks        Hooks
	Logger       *slog.Logger
	PingInterval time.Duration // default 5s
	Backoff      esl.Backoff
	Limits       esl.Limits
}

// New prepares the nodes; Run connects them.
func New(cfgs []NodeConfig, o Options) (*Nodes, error) {
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	n := &Nodes{nodes: map[string]*node{}, allow: o.Allow, bridge: o.Bridge, hooks: o.Hooks, logger: o.Logger, ping: o.PingInterval}
	for _, c := range cfgs {
		if _, dup := n.nodes[c.Name]; dup {
			return nil, fmt.Errorf("node %q configured twice", c.Name)
		}
		nd := &node{cfg: c}
		for _, s := range o.Subscriptions {
			if err := validEvent(s); err != nil {
				return nil, err
			}
			nd.subs = append(nd.subs, s)
		}
		name := c.Name
		nd.in = esl.NewInbound(esl.InboundConfig{
			Addr: c.Addr, Password: c.Password, Backoff: o.Backoff,
			Options: esl.ConnOptions{
				Limits:  o.Limits,
				OnEvent: func(ev *esl.Event) { n.onEvent(nd, ev) },
				OnBadEvent: func(err error) {
					o.Logger.Warn("undecodable event from FreeSWITCH", "node", name, "err", err)
				},
			},
			OnConnect: func(ctx context.Context, c *esl.Client) error { return nd.resubscribe(ctx, c) },
			OnStateChange: func(st esl.InboundState) {
				if st.Connected {
					o.Logger.Info("FreeSWITCH node connected", "node", name, "addr", nd.cfg.Addr)
				} else {
					o.Logger.Warn("FreeSWITCH node unreachable", "node", name, "addr", nd.cfg.Addr, "err", st.LastError, "attempts", st.Attempts)
				}
				if n.hooks.State != nil {
					n.hooks.State(name, st.Connected)
				}
			},
		})
		n.nodes[c.Name] = nd
		n.order = append(n.order, c.Name)
	}
	return n, nil
}

// Run keeps every node connected until ctx ends.
func (n *Nodes) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range n.order {
		nd := n.nodes[name]
		g.Go(func() error { nd.in.Run(ctx); return nil })
		g.Go(func() error { n.pingLoop(ctx, nd); return nil })
	}
	return g.Wait()
}

// Names lists the configured nodes in order.
func (n *Nodes) Names() []string { return slices.Clone(n.order) }

func (n *Nodes) get(name string) (*node, error) {
	nd, ok := n.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (configured: %s)", ErrUnknownNode, name, strings.Join(n.order, ", "))
	}
	return nd, nil
}

// Allowed reports whether cmd may be run through the api.
func (n *Nodes) Allowed(cmd string) bool {
	verb, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	return slices.Contains(n.allow, "*") || slices.Contains(n.allow, verb)
}

// API runs an allow-listed api command on a node; background runs it as
// bgapi (for commands that would block the connection, like originate).
func (n *Nodes) API(ctx context.Context, name, cmd string, background bool) (string, error) {
	if !n.Allowed(cmd) {
		verb, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
		return "", fmt.Errorf("%w: %q", ErrNotAllowed, verb)
	}
	return n.Exec(ctx, name, cmd, background)
}

// Exec runs any api command: for the gateway's own use (originate,
// uuid_kill), not for commands from outside.
func (n *Nodes) Exec(ctx context.Context, name, cmd string, background bool) (string, error) {
	nd, err := n.get(name)
	if err != nil {
		return "", err
	}
	c, err := nd.in.Client()
	if err != nil {
		return "", err
	}
	if background {
		return c.BGAPI(ctx, cmd)
	}
	return c.API(ctx, cmd)
}

var eventRE = regexp.MustCompile(`^(ALL|[A-Z][A-Z0-9_]{0,63}|CUSTOM [A-Za-z0-9_:.\-]{1,128})$`)

func validEvent(name string) error {
	if !eventRE.MatchString(name) {
		return fmt.Errorf("%w: %q (want e.g. CHANNEL_ANSWER, ALL or \"CUSTOM sub::class\")", ErrBadEvent, name)
	}
	return nil
}

// Subscriptions lists a node's event subscriptions.
func (n *Nodes) Subscriptions(name string) ([]string, error) {
	nd, err := n.get(name)
	if err != nil {
		return nil, err
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return slices.Clone(nd.subs), nil
}

// Subscribe adds event subscriptions; they take effect now if the node is
// connected, and on every reconnect.
func (n *Nodes) Subscribe(ctx context.Context, name string, events []string) error {
	nd, err := n.get(name)
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := validEvent(e); err != nil {
			return err
		}
	}
	nd.mu.Lock()
	for _, e := range events {
		if !slices.Contains(nd.subs, e) {
			nd.subs = append(nd.subs, e)
		}
	}
	nd.mu.Unlock()
	if c, err := nd.in.Client(); err == nil {
		return c.Subscribe(ctx, "plain", events...)
	}
	return nil
}

// Unsubscribe removes one subscription.
func (n *Nodes) Unsubscribe(ctx context.Context, name, event string) (bool, error) {
	nd, err := n.get(name)
	if err != nil {
		return false, err
	}
	nd.mu.Lock()
	i := slices.Index(nd.subs, event)
	if i >= 0 {
		nd.subs = slices.Delete(nd.subs, i, i+1)
	}
	nd.mu.Unlock()
	if i < 0 {
		return false, nil
	}
	if c, err := nd.in.Client(); err == nil {
		if event == "ALL" {
			return true, c.NoEvents(ctx)
		}
		return true, c.NixEvent(ctx, event)
	}
	return true, nil
}

func (nd *node) resubscribe(ctx context.Context, c *esl.Client) error {
	nd.mu.Lock()
	subs := slices.Clone(nd.subs)
	nd.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}
	return c.Subscribe(ctx, "plain", subs...)
}

func (n *Nodes) onEvent(nd *node, ev *esl.Event) {
	if n.bridge == nil {
		return
	}
	name := ev.Name()
	nd.mu.Lock()
	wanted := slices.Contains(nd.subs, "ALL") || slices.Contains(nd.subs, name) ||
		(name == "CUSTOM" && slices.Contains(nd.subs, "CUSTOM "+ev.Get("Event-Subclass")))
	nd.mu.Unlock()
	if wanted {
		n.bridge(nd.cfg.Name, ev)
	}
}

// pingLoop measures the round trip every interval. A node that stops
// answering without closing its socket (a frozen host, a dropped route) is
// disconnected after three missed pings, so the reconnect loop takes over
// and requests fail at once instead of timing out one by one.
func (n *Nodes) pingLoop(ctx context.Context, nd *node) {
	t := time.NewTicker(n.ping)
	defer t.Stop()
	missed := 0
	for {
		if c, err := nd.in.Client(); err == nil {
			pctx, cancel := context.WithTimeout(ctx, min(n.ping, 2*time.Second))
			start := time.Now()
			_, err := c.API(pctx, "status")
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				if missed++; missed >= 3 {
					n.logger.Warn("FreeSWITCH node stopped answering; reconnecting", "node", nd.cfg.Name, "err", err)
					c.Close()
					missed = 0
				}
			case err == nil:
				missed = 0
			}
			if err == nil {
				rtt := time.Since(start)
				nd.mu.Lock()
				nd.rtt, nd.lastPing = rtt, time.Now()
				nd.mu.Unlock()
				if n.hooks.RTT != nil {
					n.hooks.RTT(nd.cfg.Name, rtt)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status reports every node.
func (n *Nodes) Status() []Status {
	out := make([]Status, 0, len(n.order))
	for _, name := range n.order {
		nd := n.nodes[name]
		st := nd.in.State()
		s := Status{Name: name, Addr: nd.cfg.Addr, Connected: st.Connected, Since: st.Since, Attempts: st.Attempts, LastError: st.LastError}
		nd.mu.Lock()
		s.Subscriptions = slices.Clone(nd.subs)
		if !nd.lastPing.IsZero() {
			ms := float64(nd.rtt.Microseconds()) / 1000
			lp := nd.lastPing
			s.RTTMillis, s.LastPing = &ms, &lp
		}
		nd.mu.Unlock()
		if s.Subscriptions == nil {
			s.Subscriptions = []string{}
		}
		out = append(out, s)
	}
	return out
}

// Has reports whether name is a configured node.
func (n *Nodes) Has(name string) bool { _, ok := n.nodes[name]; return ok }
