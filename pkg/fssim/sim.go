package fssim

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// Options configure a simulator. The zero value is usable.
type Options struct {
	Password  string  // event socket password; default ClueCon
	Hostname  string  // FreeSWITCH-Hostname and -Switchname; default fssim
	TimeScale float64 // multiplies every simulated duration; default 1
	// PlaybackDuration is how long a file or tone plays (before scaling);
	// default 1s.
	PlaybackDuration time.Duration
	Limits           esl.Limits
	Logger           *slog.Logger
	// Deny, if set, refuses inbound connections as FreeSWITCH's ACL does
	// (text/rude-rejection).
	Deny func(net.Addr) bool
	// IdleTimeout closes an inbound connection that sends nothing for this
	// long; 0 never does.
	IdleTimeout time.Duration
	// Dialplan replaces DefaultDialplan.
	Dialplan []Route
}

// Sim is one simulated FreeSWITCH.
type Sim struct {
	opts     Options
	coreUUID string
	seq      atomic.Uint64

	mu        sync.Mutex
	bridgeMu  sync.Mutex // bridging and unbridging change two channels at once
	channels  map[string]*Channel
	conns     map[*inboundConn]struct{}
	sockSubs  map[*socketSession]struct{} // sockets with "event" subscriptions
	watchers  map[int]func(*esl.Event)
	nextWatch int
	endpoints map[string]Endpoint
	gateways  map[string]bool // name → up
	dialplan  []Route
	listeners []net.Listener
	closed    bool

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// New builds a simulator; ListenInbound and PlaceCall put it to work.
func New(opts Options) *Sim {
	if opts.Password == "" {
		opts.Password = "ClueCon"
	}
	if opts.Hostname == "" {
		opts.Hostname = "fssim"
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.PlaybackDuration <= 0 {
		opts.PlaybackDuration = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{
		opts: opts, coreUUID: esl.NewUUID(),
		channels: map[string]*Channel{}, conns: map[*inboundConn]struct{}{}, sockSubs: map[*socketSession]struct{}{}, watchers: map[int]func(*esl.Event){},
		endpoints: map[string]Endpoint{}, gateways: map[string]bool{},
	}
	s.dialplan = opts.Dialplan
	if s.dialplan == nil {
		s.dialplan = DefaultDialplan("127.0.0.1:8084")
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// scaled applies TimeScale.
func (s *Sim) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.opts.TimeScale)
}

// sleep waits d (scaled) or until ctx ends; false if ctx ended.
func (s *Sim) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(s.scaled(d))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SetDialplan replaces the routes.
func (s *Sim) SetDialplan(routes []Route) {
	s.mu.Lock()
	s.dialplan = routes
	s.mu.Unlock()
}

// Watch calls f with every event the simulator generates, until the
// returned function is called. f must not block.
func (s *Sim) Watch(f func(*esl.Event)) (stop func()) {
	s.mu.Lock()
	id := s.nextWatch
	s.nextWatch++
	s.watchers[id] = f
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}
}

// Channels lists live channels' UUIDs.
func (s *Sim) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.channels))
	for id := range s.channels {
		out = append(out, id)
	}
	return out
}

// Channel returns a live channel.
func (s *Sim) Channel(uuid string) *Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[uuid]
}

// newEvent starts an event with the headers FreeSWITCH puts on every one.
func (s *Sim) newEvent(name, file, function string, line int) *esl.Event {
	now := time.Now()
	return &esl.Event{Headers: esl.NewHeaders(
		"Event-Name", name,
		"Core-UUID", s.coreUUID,
		"FreeSWITCH-Hostname", s.opts.Hostname,
		"FreeSWITCH-Switchname", s.opts.Hostname,
		"FreeSWITCH-IPv4", "127.0.0.1",
		"FreeSWITCH-IPv6", "::1",
		"Event-Date-Local", now.Format("2006-01-02 15:04:05"),
		"Event-Date-GMT", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"),
		"Event-Date-Timestamp", strconv.FormatInt(now.UnixMicro(), 10),
		"Event-Calling-File", file,
		"Event-Calling-Function", function,
		"Event-Calling-Line-Number", strconv.Itoa(line),
		"Event-Sequence", strconv.FormatUint(s.seq.Add(1), 10),
	)}
}

// fire delivers an event to inbound listeners, socket sessions and
// watchers.
func (s *Sim) fire(ev *esl.Event) {
	s.mu.Lock()
	conns := make([]*inboundConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	socks := make([]*socketSession, 0, len(s.sockSubs))
	for ss := range s.sockSubs {
		socks = append(socks, ss)
	}
	watchers := make([]func(*esl.Event), 0, len(s.watchers))
	for _, w := range s.watchers {
		watchers = append(watchers, w)
	}
	ch := s.channels[ev.UniqueID()]
	s.mu.Unlock()
	for _, c := range conns {
		c.offer(ev)
	}
	for _, ss := range socks {
		ss.offerOther(ev)
	}
	if ch != nil {
		ch.deliver(ev)
	}
	for _, w := range watchers {
		w(ev)
	}
}

// Close hangs up every channel, closes every connection and listener, and
// waits for the simulator's goroutines.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := s.listeners
	chans := make([]*Channel, 0, len(s.channels))
	for _, c := range s.channels {
		chans = append(chans, c)
	}
	conns := make([]*inboundConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range chans {
		c.Hangup("SYSTEM_SHUTDOWN")
	}
	s.cancel()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	return nil
}

// goroutine runs f as one of the simulator's goroutines.
func (s *Sim) goroutine(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}
