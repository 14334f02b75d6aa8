// Package service wires the esl-gateway together: configuration, NATS,
// JetStream, the FreeSWITCH nodes, the socket listener, the NATS and REST
// ports, and the order in which they start and stop.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/adapters/eventlog"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/adapters/freeswitch"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/app"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/metrics"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/ports/adminhttp"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/ports/natsrpc"
)

// Service is a running gateway's parts.
type Service struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	streams atomic.Bool
	metrics *metrics.Metrics
	events  *eventlog.Log
	nodes   *freeswitch.Nodes
	router  *natsrpc.Router
	gw      *app.Gateway
	socket  *esl.Server
	sockLn  net.Listener
	web     *admin.Listener
}

// New builds the gateway and binds its listeners, so that their addresses
// are known (and port 0 works in tests) before Run.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log}
	nodeCfgs, _ := cfg.NodeConfigs()
	allow, _ := cfg.allowPrefixes()

	nc, err := bus.Connect(cfg.NATSURL, "esl-gateway/"+cfg.Instance, func(up bool, err error) {
		if up {
			log.Info("NATS connected", "url", cfg.NATSURL)
		} else {
			log.Warn("NATS disconnected; live calls go on, events wait in the outbox", "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	s.nc = nc
	s.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s.events = eventlog.New(func(ctx context.Context, subject string, e *events.Envelope) (bool, error) {
		return bus.Publish(ctx, s.js, subject, e)
	}, log, cfg.MaxPending, eventlog.Hooks{
		Published: func(typ string, dup bool) {
			s.metrics.EventsPublished.WithLabelValues(typ, strconv.FormatBool(dup)).Inc()
		},
		Failed:  func(typ string, _ error) { s.metrics.EventsFailed.WithLabelValues(typ).Inc() },
		Dropped: func(typ string) { s.metrics.EventsDropped.WithLabelValues(typ).Inc() },
	})
	var gw *app.Gateway
	s.metrics = metrics.New(func() int { return gw.ActiveSessions() }, s.events.Pending)
	s.nodes, err = freeswitch.New(nodeCfgs, freeswitch.Options{
		Allow: cfg.APIAllow, Subscriptions: cfg.Subscriptions, Logger: log,
		Limits: esl.Limits{MaxFrameBytes: cfg.MaxFrameBytes},
		Bridge: s.bridgeEvent,
		Hooks: freeswitch.Hooks{
			State: func(node string, up bool) { s.metrics.NodeUp.WithLabelValues(node).Set(b2f(up)) },
			RTT:   func(node string, d time.Duration) { s.metrics.NodeRTT.WithLabelValues(node).Set(d.Seconds()) },
		},
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.router = natsrpc.NewRouter(nc, log)
	gw = app.New(app.Config{
		Instance: cfg.Instance, Logger: log, Events: s.events, Nodes: s.nodes, Router: s.router,
		NATSUp: nc.IsConnected,
		Hooks: app.Hooks{
			SessionStarted: func(d time.Duration) { s.metrics.SessionSetup.Observe(d.Seconds()) },
			Command:        s.metrics.Command,
			Refused:        func(reason string) { s.metrics.SessionsRefused.WithLabelValues(reason).Inc() },
			FrameRejected:  func(reason string) { s.metrics.FramesRejected.WithLabelValues(reason).Inc() },
			Originated:     func(result string) { s.metrics.OriginateResults.WithLabelValues(result).Inc() },
		},
	})
	s.gw = gw
	s.socket = &esl.Server{
		Handler:        gw.HandleSession,
		Options:        esl.ConnOptions{Limits: esl.Limits{MaxFrameBytes: cfg.MaxFrameBytes}},
		ConnectTimeout: cfg.ConnectTimeout,
		MaxSessions:    cfg.MaxSessions,
		Allow:          func(a net.Addr) bool { return allowed(allow, a) },
		OnRefuse: func(remote net.Addr, reason string) {
			s.metrics.SessionsRefused.WithLabelValues(reason).Inc()
			log.Warn("socket connection refused", "remote", remote.String(), "reason", reason)
		},
		OnError: func(remote net.Addr, err error) {
			var fe *esl.FrameError
			if errors.As(err, &fe) {
				s.metrics.FramesRejected.WithLabelValues(fe.Reason).Inc()
			}
			log.Warn("socket connection failed", "remote", remote.String(), "err", err)
		},
	}
	adm := admin.New(admin.Options{
		Token: cfg.AdminToken, Registry: s.metrics.Registry, Logger: log,
		Ready: []admin.Check{
			{Name: "nats", Check: func(context.Context) error {
				if !nc.IsConnected() {
					return fmt.Errorf("not connected to %s", cfg.NATSURL)
				}
				return nil
			}},
			{Name: "jetstream", Check: func(context.Context) error {
				if !s.streams.Load() {
					return errors.New("streams not yet created")
				}
				return nil
			}},
		},
		ReadyDetail: func(context.Context) any {
			return map[string]any{"nodes": s.nodes.Status(), "active_sessions": gw.ActiveSessions(), "events_pending": s.events.Pending()}
		},
	})
	adminhttp.Register(adm, gw, s.nodes)

	if s.sockLn, err = net.Listen("tcp", cfg.SocketAddr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("listen for FreeSWITCH sockets on %s: %w", cfg.SocketAddr, err)
	}
	if s.web, err = admin.Listen(cfg.AdminAddr, adm.Handler()); err != nil {
		s.sockLn.Close()
		nc.Close()
		return nil, err
	}
	return s, nil
}

// SocketAddr is where FreeSWITCH connects.
func (s *Service) SocketAddr() string { return s.sockLn.Addr().String() }

// AdminAddr is the admin REST address.
func (s *Service) AdminAddr() string { return s.web.Addr() }

// Run serves until ctx ends, then shuts down in order: stop taking calls,
// let live ones finish (up to ShutdownGrace), answer requests in flight,
// flush events to JetStream, close NATS. It returns nil after a clean stop.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	g.Go(func() error {
		if err := s.socket.Serve(s.sockLn); !errors.Is(err, esl.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(s.web.Serve)
	nodesDone := make(chan struct{})
	go func() { s.nodes.Run(bg); close(nodesDone) }()
	go s.ensureStreams(bg)
	stopAPI, err := natsrpc.ServeNodeAPI(s.nc, s.nodes, s.log)
	if err != nil {
		return err
	}
	s.log.Info("esl-gateway ready", "socket", s.SocketAddr(), "admin", s.AdminAddr(), "nodes", s.nodes.Names(), "instance", s.cfg.Instance)

	<-gctx.Done()
	s.log.Info("shutting down: no new calls; live calls may finish", "grace", s.cfg.ShutdownGrace.String(), "active", s.gw.ActiveSessions())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	if err := s.socket.Shutdown(sctx); err != nil {
		s.log.Warn("calls still live at the end of the grace period were cut", "err", err)
	}
	cancel()
	stopAPI()
	s.router.Close()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := s.events.Flush(fctx); err != nil {
		s.log.Error("events not flushed to JetStream", "err", err)
	}
	cancel()
	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.web.Shutdown(hctx)
	cancel()
	stopBG()
	<-nodesDone
	s.nc.Drain()
	err = g.Wait()
	s.log.Info("esl-gateway stopped")
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// ensureStreams creates the streams the gateway writes, retrying while
// NATS is away.
func (s *Service) ensureStreams(ctx context.Context) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := bus.EnsureStreams(cctx, s.js, "CALLS", "FSEVENTS")
		cancel()
		if err == nil {
			s.streams.Store(true)
			return
		}
		s.log.Warn("cannot create JetStream streams yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// fsEvent is the data of an event bridged from a node subscription.
type fsEvent struct {
	Node      string            `json:"node"`
	EventName string            `json:"event_name"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body,omitempty"`
}

func (s *Service) bridgeEvent(node string, ev *esl.Event) {
	name := ev.Name()
	if name == "CUSTOM" && ev.Get("Event-Subclass") != "" {
		name = "CUSTOM." + ev.Get("Event-Subclass")
	}
	subject := "fs." + node + ".events." + subjectToken(name)
	id := node + "." + ev.Get("Core-UUID") + "." + ev.Get("Event-Sequence")
	env, err := events.New(id, "switchyard/esl-gateway/"+s.cfg.Instance, "fs.event", subject, ev.UniqueID(),
		fsEvent{Node: node, EventName: ev.Name(), Headers: ev.Headers.Map(), Body: string(ev.Body)})
	if err != nil {
		s.log.Error("cannot bridge FreeSWITCH event", "node", node, "event", name, "err", err)
		return
	}
	s.events.Append("fs:"+node, subject, env, nil)
}

// subjectToken keeps a NATS subject token valid: no spaces, wildcards or
// dots beyond the ones we place.
func subjectToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch c {
		case ' ', '*', '>', '\t', '\r', '\n':
			b[i] = '_'
		case ':':
			b[i] = '_'
		}
	}
	return string(b)
}

func allowed(prefixes []netip.Prefix, a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
