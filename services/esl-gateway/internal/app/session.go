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
	c.ready = make(chan struct{})
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

	// callctl.<uuid> is served before call.started goes out, on the same
	// NATS connection, so a policy that reacts to call.started at once
	// finds the call; its commands wait until the call's events are
	// subscribed (c.ready).
	natsUp := g.cfg.NATSUp()
	if natsUp {
		stop, err := g.cfg.Router.Serve(c.ID, func(ctx context.Context, req []byte) []byte { return g.control(ctx, c, req) })
		if err != nil {
			log.Error("cannot serve call control; handing the call back", "err", err)
			natsUp = false
		} else {
			defer stop()
		}
	}
	accepted := s.Accepted
	g.publish(c, callevent.TypeStarted, c.ID+".started", started, func() {
		if g.cfg.Hooks.SessionStarted != nil {
			g.cfg.Hooks.SessionStarted(time.Since(accepted))
		}
	})

	setup, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := s.MyEvents(setup)
	if err == nil {
		// FreeSWITCH refuses linger on single-channel (non-full) sockets;
		// there the call's end is read from CHANNEL_HANGUP instead.
		var ce *esl.CommandError
		if lerr := s.Linger(setup); lerr != nil && !(errors.As(lerr, &ce) && !s.Full) {
			err = lerr
		}
	}
	cancel()
	close(c.ready)
	if err != nil {
		log.Error("call setup failed: could not subscribe to its events", "err", err)
	} else {
		log.Info("call taken over", "caller", c.Caller, "destination", c.Dest, "mode", mode)
		if !natsUp {
			g.handBack(ctx, c, log)
		}
	}

	select {
	case <-s.Drained():
	case <-ctx.Done():
		s.Close()
		<-s.Drained()
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

// release ends the call's history when the session closes. Normally
// call.hangup is already out (linger brings CHANNEL_HANGUP_COMPLETE).
// A call that hung up while the session was still being set up has only
// CHANNEL_HANGUP, or only FreeSWITCH's disconnect notice: it still gets its
// call.hangup. Otherwise the channel lives on (socket_resume, transfer):
// call.released.
func (g *Gateway) release(c *Call, reason string) {
	c.mu.Lock()
	hung, hangupEv := c.hung, c.hangupEv
	c.hung = true
	c.mu.Unlock()
	switch {
	case hung:
	case hangupEv != nil:
		g.publish(c, callevent.TypeHangup, c.ID+"."+hangupEv.Get("Event-Sequence")+".hangup", callevent.HangupFrom(hangupEv, c.ID), nil)
	case hungUpByFreeSWITCH(c.sess):
		g.publish(c, callevent.TypeHangup, c.ID+".hangup", callevent.Hangup{CallID: c.ID, Cause: "UNKNOWN"}, nil)
	default:
		g.publish(c, callevent.TypeReleased, c.ID+".released", callevent.Released{CallID: c.ID, Reason: reason}, nil)
	}
}

// hungUpByFreeSWITCH: FreeSWITCH said goodbye with disposition
// "disconnect", which it does when the channel hangs up before linger.
func hungUpByFreeSWITCH(s *esl.Session) bool {
	n := s.DisconnectNotice()
	return n != nil && n.Headers.Get("Content-Disposition") == "disconnect"
}

func (g *Gateway) onEvent(c *Call, ev *esl.Event) {
	if ev.UniqueID() == c.ID {
		c.mu.Lock()
		if ev.Name() == "CHANNEL_HANGUP" {
			c.hangupEv = ev
		}
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
