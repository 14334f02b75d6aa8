package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/domain/callevent"
)

// HandleSession runs one call the dialplan handed over, from connect to the
// socket's close: call.started first, then the call's events in order,
// callctl requests served meanwhile. ctx ends only when the gateway is
// forced to stop.
func (g *Gateway) HandleSession(ctx context.Context, s *esl.Session) {
	mode, control := "static", "single-channel"
	if s.Async {
		mode = "async"
	}
	if s.Full {
		control = "full"
	}
	node := g.nodeName(s.ChannelData)
	started := callevent.StartedFrom(s.ChannelData, node, g.cfg.Instance, mode, control)
	c := &Call{
		ID: s.UUID(), Node: node, Caller: started.CallerIDNumber, Dest: started.DestinationNumber,
		Mode: mode, StartedAt: time.Now().UTC(), sess: s, vars: started.Variables,
	}
	log := g.logger(c)
	accepted := s.Accepted
	g.publish(c, callevent.TypeStarted, c.ID+".started", started, func() {
		if g.cfg.Hooks.SessionStarted != nil {
			g.cfg.Hooks.SessionStarted(time.Since(accepted))
		}
	})
	s.SetEventHandler(func(ev *esl.Event) { g.onEvent(c, ev) })

	g.mu.Lock()
	g.calls[c.ID] = c
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, c.ID)
		g.mu.Unlock()
		if g.cfg.Hooks.SessionEnded != nil {
			g.cfg.Hooks.SessionEnded()
		}
	}()

	setup, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := s.MyEvents(setup)
	if err == nil {
		err = s.Linger(setup)
	}
	cancel()
	if err != nil {
		log.Error("call setup failed: could not subscribe to its events", "err", err)
		g.release(c, "setup_failed")
		return
	}
	log.Info("call taken over", "caller", c.Caller, "destination", c.Dest, "mode", mode)

	if !g.cfg.NATSUp() {
		g.handBack(ctx, c, log)
	} else if stop, err := g.cfg.Router.Serve(c.ID, func(ctx context.Context, req []byte) []byte { return g.control(ctx, c, req) }); err != nil {
		log.Error("cannot serve call control; handing the call back", "err", err)
		g.handBack(ctx, c, log)
	} else {
		defer stop()
	}

	select {
	case <-s.Done():
	case <-ctx.Done():
	}
	g.release(c, "socket_closed")
	var fe *esl.FrameError
	if err := s.Err(); errors.As(err, &fe) {
		log.Error("FreeSWITCH sent a bad frame; session closed", "reason", fe.Reason, "err", err)
		if g.cfg.Hooks.FrameRejected != nil {
			g.cfg.Hooks.FrameRejected(fe.Reason)
		}
	}
	log.Info("call session ended")
}

// handBack is what the gateway does with a new call it cannot control
// (NATS is down, so no policy can drive it): with socket_resume=true the
// dialplan's next action takes the call; otherwise it is hung up with a
// cause that says "try again", instead of leaving the caller in silence.
func (g *Gateway) handBack(ctx context.Context, c *Call, log interface {
	Warn(string, ...any)
}) {
	if g.cfg.Hooks.Refused != nil {
		g.cfg.Hooks.Refused("nats_unavailable")
	}
	c.mu.Lock()
	resume := strings.EqualFold(c.vars["socket_resume"], "true")
	c.mu.Unlock()
	if resume {
		log.Warn("NATS unreachable: handing the call back to the dialplan (socket_resume)")
		c.sess.Close()
		return
	}
	log.Warn("NATS unreachable: hanging the call up with NORMAL_TEMPORARY_FAILURE; set socket_resume=true in the dialplan to fall back instead")
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c.sess.Hangup(hctx, "NORMAL_TEMPORARY_FAILURE")
}

// release publishes call.released when the session ends without a
// hang-up: the channel lives on in FreeSWITCH.
func (g *Gateway) release(c *Call, reason string) {
	c.mu.Lock()
	hung := c.hung
	c.mu.Unlock()
	if !hung {
		g.publish(c, callevent.TypeReleased, c.ID+".released", callevent.Released{CallID: c.ID, Reason: reason}, nil)
	}
}

func (g *Gateway) onEvent(c *Call, ev *esl.Event) {
	if ev.UniqueID() == c.ID {
		c.mu.Lock()
		for _, h := range ev.Headers {
			if name, ok := strings.CutPrefix(h.Name, "variable_"); ok {
				c.vars[name] = h.Value
			}
		}
		c.mu.Unlock()
	}
	typ, data, ok := callevent.From(ev, c.ID)
	if !ok {
		return
	}
	c.mu.Lock()
	switch typ {
	case callevent.TypeAnswered:
		c.Answered = true
	case callevent.TypeHangup:
		c.hung = true
	}
	c.mu.Unlock()
	// Event-Sequence is unique per FreeSWITCH core: a deterministic id, so
	// the same event published twice is stored once.
	g.publish(c, typ, c.ID+"."+ev.Get("Event-Sequence")+"."+strings.TrimPrefix(typ, "call."), data, nil)
}

func (g *Gateway) publish(c *Call, typ, id string, data any, stored func()) {
	env, err := events.New(id, g.source, typ, callevent.Subject(c.ID, typ), c.ID, data)
	if err != nil {
		g.logger(c).Error("cannot build event", "type", typ, "err", err)
		return
	}
	g.cfg.Events.Append(c.ID, env.Subject, env, stored)
}

// nodeName names the node a socket call came from: the configured node
// whose name is FreeSWITCH's switchname, else the switchname itself.
func (g *Gateway) nodeName(cd *esl.Event) string {
	name := cd.Get("FreeSWITCH-Switchname")
	if name == "" {
		name = cd.Get("FreeSWITCH-Hostname")
	}
	if names := g.cfg.Nodes.Names(); name == "" && len(names) == 1 {
		return names[0]
	}
	return name
}
