package fssim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/internal/fifo"
)

// goodbye is the body FreeSWITCH puts in its disconnect notices.
const goodbye = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

// maxQueuedEvents bounds events waiting for a slow listener; past it they
// are dropped, as FreeSWITCH drops them for listeners that do not read.
const maxQueuedEvents = 20000

// ListenInbound serves the event socket on addr (e.g. "127.0.0.1:0") and
// returns the listener; Close stops it.
func (s *Sim) ListenInbound(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fssim: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil, errors.New("fssim: closed")
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.goroutine(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.goroutine(func() { s.serveInbound(nc) })
		}
	})
	return ln, nil
}

// inboundConn is one application connected to the event socket.
type inboundConn struct {
	sim    *Sim
	nc     net.Conn
	sub    *subscription
	events *fifo.Queue[[]byte] // event frames, bounded
	wmu    sync.Mutex          // replies and events share the socket
	done   chan struct{}
	once   sync.Once
}

func (c *inboundConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *inboundConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// offer queues an event if the listener wants it; a full queue drops it.
func (c *inboundConn) offer(ev *esl.Event) {
	format, ok := c.sub.wants(ev)
	if !ok {
		return
	}
	if !c.events.Push(esl.AppendEventFrame(nil, format, ev)) {
		c.sim.opts.Logger.Warn("fssim: event queue full; dropping event for a slow listener", "event", ev.Name())
	}
}

func (c *inboundConn) writeEvents() {
	writeQueued(c.events, c.done, c.write)
	c.close()
}

func (s *Sim) serveInbound(nc net.Conn) {
	c := &inboundConn{sim: s, nc: nc, sub: newSubscription(), events: fifo.New[[]byte](maxQueuedEvents), done: make(chan struct{})}
	defer c.close()
	if s.opts.Deny != nil && s.opts.Deny(nc.RemoteAddr()) {
		b := esl.AppendFrame(nil, esl.TypeRudeRejection, []byte("Access Denied, go away.\n"))
		c.write(esl.AppendFrame(b, esl.TypeDisconnectNotice, []byte(goodbye)))
		return
	}
	if c.write([]byte("Content-Type: auth/request\n\n")) != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	go c.writeEvents()
	rd := esl.NewReader(nc, s.opts.Limits)
	authed := false
	for {
		if s.opts.IdleTimeout > 0 {
			nc.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		}
		cmd, err := rd.ReadCommand()
		if err != nil {
			var fe *esl.FrameError
			if errors.As(err, &fe) {
				s.opts.Logger.Warn("fssim: closing a connection that sent a bad frame", "reason", fe.Reason, "remote", nc.RemoteAddr().String())
			}
			return
		}
		if !authed {
			if cmd.Verb() != "auth" {
				c.write(esl.AppendReply(nil, "-ERR command not found"))
				continue
			}
			if cmd.Arg() != s.opts.Password {
				c.write(esl.AppendFrame(esl.AppendReply(nil, "-ERR invalid"), esl.TypeDisconnectNotice, []byte(goodbye)))
				return
			}
			authed = true
			c.write(esl.AppendReply(nil, "+OK accepted"))
			continue
		}
		if !c.command(cmd) {
			return
		}
	}
}

// command answers one command; false ends the connection.
func (c *inboundConn) command(cmd *esl.Command) bool {
	s := c.sim
	arg := cmd.Arg()
	reply := func(text string, extra ...esl.Header) bool {
		return c.write(esl.AppendReply(nil, text, extra...)) == nil
	}
	switch cmd.Verb() {
	case "api":
		out := s.API(s.ctx, arg)
		return c.write(esl.AppendFrame(nil, esl.TypeAPIResponse, []byte(out))) == nil
	case "bgapi":
		id := cmd.Headers.Get("Job-UUID")
		if id == "" {
			id = esl.NewUUID()
		}
		s.bgapi(id, arg)
		return reply("+OK Job-UUID: "+id, esl.Header{Name: "Job-UUID", Value: id})
	case "event":
		f := strings.Fields(arg)
		if len(f) < 1 || (f[0] != "plain" && f[0] != "json" && f[0] != "xml") {
			return reply("-ERR invalid event format")
		}
		c.sub.add(f[0], f[1:])
		return reply("+OK event listener enabled " + f[0])
	case "myevents":
		f := strings.Fields(arg)
		if len(f) == 0 {
			return reply("-ERR invalid uuid")
		}
		format := "plain"
		if len(f) > 1 {
			format = f[1]
		}
		c.sub.add(format, []string{"ALL"})
		c.sub.mu.Lock()
		c.sub.uuidOnly = f[0]
		c.sub.mu.Unlock()
		return reply("+OK Events Enabled")
	case "filter":
		return reply(filterCommand(c.sub, arg))
	case "nixevent":
		c.sub.nix(strings.Fields(arg))
		return reply("+OK events nixed")
	case "noevents":
		c.sub.clear()
		return reply("+OK no longer listening for events")
	case "sendmsg":
		ch := s.Channel(strings.TrimSpace(arg))
		if ch == nil {
			return reply("-ERR invalid session id [" + strings.TrimSpace(arg) + "]")
		}
		m, err := messageFrom(cmd)
		if err != nil {
			return reply("-ERR " + err.Error())
		}
		ch.enqueue(m)
		return reply("+OK")
	case "sendevent":
		return reply("+OK " + s.sendEvent(arg, cmd))
	case "log":
		level := strings.TrimSpace(arg)
		if level == "" {
			level = "7"
		}
		return reply(fmt.Sprintf("+OK log level %s [%s]", level, level))
	case "nolog":
		return reply("+OK no longer logging")
	case "linger":
		return reply("+OK will linger")
	case "nolinger":
		return reply("+OK will not linger")
	case "exit":
		c.write(esl.AppendFrame(esl.AppendReply(nil, "+OK bye"), esl.TypeDisconnectNotice, []byte(goodbye)))
		return false
	}
	return reply("-ERR command not found")
}

// filterCommand handles "filter <header> <value>" and "filter delete
// <header> [<value>]" with FreeSWITCH's replies.
func filterCommand(sub *subscription, arg string) string {
	f := strings.SplitN(arg, " ", 3)
	if len(f) >= 2 && f[0] == "delete" {
		v := ""
		if len(f) == 3 {
			v = f[2]
		}
		sub.deleteFilter(f[1], v)
		return fmt.Sprintf("+OK filter deleted. [%s][%s]", f[1], v)
	}
	if len(f) < 2 {
		return "-ERR invalid syntax"
	}
	v := strings.Join(f[1:], " ")
	sub.addFilter(f[0], v)
	return fmt.Sprintf("+OK filter added. [%s]=[%s]", f[0], v)
}

// messageFrom reads a sendmsg's call-command.
func messageFrom(cmd *esl.Command) (*message, error) {
	h := cmd.Headers
	switch strings.ToLower(h.Get("call-command")) {
	case "execute":
		arg := h.Get("execute-app-arg")
		if arg == "" && len(cmd.Body) > 0 {
			arg = string(cmd.Body)
		}
		loops := 1
		fmt.Sscan(h.Get("loops"), &loops)
		return &message{app: h.Get("execute-app-name"), arg: arg, appUUID: h.Get("Event-UUID"), loops: loops}, nil
	case "hangup":
		cause := h.Get("hangup-cause")
		if cause == "" {
			cause = "NORMAL_CLEARING"
		}
		return &message{hangupCause: cause}, nil
	case "unicast", "nomedia", "xferext":
		return &message{app: "log", arg: h.Get("call-command")}, nil
	}
	return nil, errors.New("invalid command")
}

// enqueue hands a message to the channel's thread.
func (c *Channel) enqueue(m *message) {
	select {
	case c.msgq <- m:
	case <-c.ctx.Done():
		if m.done != nil {
			m.done <- nil
		}
	}
}

// bgapi runs an api command in the background and reports it as a
// BACKGROUND_JOB event.
func (s *Sim) bgapi(id, cmd string) {
	s.goroutine(func() {
		out := s.API(s.ctx, cmd)
		verb, rest, _ := strings.Cut(cmd, " ")
		ev := s.newEvent("BACKGROUND_JOB", "mod_event_socket.c", "api_exec", 1580)
		ev.Headers = append(ev.Headers, esl.Header{Name: "Job-UUID", Value: id}, esl.Header{Name: "Job-Command", Value: verb})
		if rest != "" {
			ev.Headers = append(ev.Headers, esl.Header{Name: "Job-Command-Arg", Value: rest})
		}
		ev.Body = []byte(out)
		s.fire(ev)
	})
}

// sendEvent fires an event a client sent, returning its Event-UUID.
func (s *Sim) sendEvent(name string, cmd *esl.Command) string {
	id := esl.NewUUID()
	ev := s.newEvent(strings.TrimSpace(name), "mod_event_socket.c", "parse_command", 2139)
	for _, h := range cmd.Headers {
		if !strings.EqualFold(h.Name, "Content-Length") {
			ev.Headers = append(ev.Headers, h)
		}
	}
	ev.Headers = append(ev.Headers, esl.Header{Name: "Event-UUID", Value: id})
	ev.Body = cmd.Body
	s.fire(ev)
	return id
}
