package fssim

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/internal/fifo"
)

// socketSession is the `socket` application's connection to an outbound
// ESL listener: FreeSWITCH is the client here, the application serves.
type socketSession struct {
	ch    *Channel
	nc    net.Conn
	async bool
	full  bool

	mu       sync.Mutex
	myevents bool
	format   string
	linger   bool
	resume   bool
	sub      *subscription // "event ..." inside the session
	ending   bool          // the disconnect notice is queued

	out     *fifo.Queue[[]byte] // frames to write, in order; nil ends the session
	appGone chan struct{}       // the application closed the socket (or it broke)
	gone    sync.Once
	wg      sync.WaitGroup
}

// runSocket runs "socket <host:port> [async] [full]" on the channel's
// thread. It returns true when the dialplan should go on (socket_resume),
// false when the channel is done with its dialplan.
func (c *Channel) runSocket(data string) bool {
	f := strings.Fields(data)
	if len(f) == 0 {
		return true
	}
	async, full := false, false
	for _, x := range f[1:] {
		async = async || x == "async"
		full = full || x == "full"
	}
	c.SetVar("socket_host", strings.Split(f[0], ":")[0])
	appUUID := esl.NewUUID()
	c.mu.Lock()
	c.setVarLocked("current_application_data", data)
	c.setVarLocked("current_application", "socket")
	c.mu.Unlock()
	c.fireChannelEvent("CHANNEL_EXECUTE", "switch_core_session.c", "switch_core_session_exec", 2855,
		esl.Header{Name: "Application", Value: "socket"}, esl.Header{Name: "Application-Data", Value: data},
		esl.Header{Name: "Application-UUID", Value: appUUID})
	cont := c.socketSession(f[0], async, full)
	if !c.hungUp() {
		ev := c.sim.newEvent("CHANNEL_EXECUTE_COMPLETE", "switch_core_session.c", "switch_core_session_exec", 2895)
		ev.Headers = c.appendChannelHeaders(ev.Headers, true)
		ev.Headers = append(ev.Headers, esl.Header{Name: "Application", Value: "socket"}, esl.Header{Name: "Application-Data", Value: data},
			esl.Header{Name: "Application-Response", Value: "_none_"}, esl.Header{Name: "Application-UUID", Value: appUUID})
		c.sim.fire(ev)
	}
	return cont
}

func (c *Channel) resumable() bool {
	v, _ := c.Var("socket_resume")
	return strings.EqualFold(v, "true")
}

func (c *Channel) socketSession(addr string, async, full bool) bool {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		c.sim.opts.Logger.Warn("fssim: socket application cannot connect", "addr", addr, "uuid", c.UUID, "err", err)
		if c.resumable() {
			return true
		}
		c.Hangup("DESTINATION_OUT_OF_ORDER")
		return false
	}
	s := &socketSession{ch: c, nc: nc, async: async, full: full, format: "plain", sub: newSubscription(),
		out: fifo.New[[]byte](maxQueuedEvents), appGone: make(chan struct{})}
	c.addSession(s)
	s.wg.Add(2)
	c.sim.goroutine(func() { defer s.wg.Done(); s.writeLoop() })
	c.sim.goroutine(func() { defer s.wg.Done(); s.readLoop() })
	for {
		select {
		case m := <-c.msgq:
			c.process(m)
		case <-s.appGone:
			c.removeSession(s)
			s.mu.Lock()
			resume := s.resume
			s.mu.Unlock()
			if resume || c.resumable() {
				return true
			}
			c.Hangup("NORMAL_CLEARING")
			return false
		case <-c.ctx.Done():
			// The channel hung up; the session gets its last events and its
			// disconnect notice from offer.
			return false
		case <-c.brk:
			if c.transferring() {
				s.end("disconnect")
				return false
			}
		}
	}
}

func (s *socketSession) queue(b []byte) {
	if !s.out.Push(b) {
		s.ch.sim.opts.Logger.Warn("fssim: socket application too slow; dropping a frame", "uuid", s.ch.UUID)
	}
}

func (s *socketSession) writeLoop() {
	defer s.nc.Close()
	defer s.listen(false)
	writeQueued(s.out, s.appGone, func(b []byte) error {
		s.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := s.nc.Write(b)
		return err
	})
}

// end queues the disconnect notice and closes the socket after it.
func (s *socketSession) end(disposition string) {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	s.ending = true
	s.mu.Unlock()
	var b []byte
	if disposition == "linger" {
		b = []byte("Content-Type: text/disconnect-notice\nControlled-Session-UUID: " + s.ch.UUID +
			"\nContent-Disposition: linger\nChannel-Name: " + s.ch.name + "\nLinger-Time: -1\nContent-Length: 0\n\n")
	} else {
		b = esl.AppendFrame(nil, esl.TypeDisconnectNotice, []byte(goodbye),
			esl.Header{Name: "Controlled-Session-UUID", Value: s.ch.UUID}, esl.Header{Name: "Content-Disposition", Value: "disconnect"})
	}
	s.out.Push(b)
	s.out.Push(nil)
}

// offer receives every event of the controlled channel: it forwards the
// subscribed ones, and ends the session after the hang-up (at once) or,
// lingering, after CHANNEL_HANGUP_COMPLETE.
func (s *socketSession) offer(ev *esl.Event) {
	s.mu.Lock()
	wanted := s.myevents
	format := s.format
	linger := s.linger
	ending := s.ending
	s.mu.Unlock()
	if ending {
		return
	}
	if _, ok := s.sub.wants(ev); ok {
		wanted = true
	}
	if wanted {
		s.queue(esl.AppendEventFrame(nil, format, ev))
	}
	switch ev.Name() {
	case "CHANNEL_HANGUP":
		if !linger {
			s.end("disconnect")
		}
	case "CHANNEL_HANGUP_COMPLETE":
		if linger {
			s.end("linger")
		}
	}
}

// offerOther receives events of other channels (and channel-less ones
// like BACKGROUND_JOB) for a socket that subscribed with "event".
func (s *socketSession) offerOther(ev *esl.Event) {
	if ev.UniqueID() == s.ch.UUID {
		return // offer has it
	}
	s.mu.Lock()
	ending, myevents, format := s.ending, s.myevents, s.format
	s.mu.Unlock()
	// With myevents FreeSWITCH drops every event not of this channel,
	// BACKGROUND_JOB included.
	if myevents || ending {
		return
	}
	if _, ok := s.sub.wants(ev); ok {
		s.queue(esl.AppendEventFrame(nil, format, ev))
	}
}

func (s *socketSession) listen(on bool) {
	sim := s.ch.sim
	sim.mu.Lock()
	if on {
		sim.sockSubs[s] = struct{}{}
	} else {
		delete(sim.sockSubs, s)
	}
	sim.mu.Unlock()
}

func (s *socketSession) reply(text string) {
	s.queue(esl.AppendReply(nil, text))
}

func (s *socketSession) readLoop() {
	defer s.gone.Do(func() { close(s.appGone) })
	rd := esl.NewReader(s.nc, s.ch.sim.opts.Limits)
	connected := false
	for {
		cmd, err := rd.ReadCommand()
		if err != nil {
			var fe *esl.FrameError
			if errors.As(err, &fe) {
				s.ch.sim.opts.Logger.Warn("fssim: socket application sent a bad frame", "reason", fe.Reason, "uuid", s.ch.UUID)
			}
			return
		}
		if !connected {
			if cmd.Verb() != "connect" {
				s.reply("-ERR command not found")
				continue
			}
			connected = true
			s.queue(s.channelData())
			continue
		}
		if !s.command(cmd) {
			return
		}
	}
}

// channelData is the answer to connect: the channel's headers URL-encoded
// in the frame's own header block, no Content-Length.
func (s *socketSession) channelData() []byte {
	c := s.ch
	ev := c.sim.newEvent("CHANNEL_DATA", "mod_event_socket.c", "parse_command", 2029)
	ev.Headers = c.appendChannelHeaders(ev.Headers, true)
	var b []byte
	for _, h := range ev.Headers {
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = esl.AppendURLEncode(b, h.Value)
		b = append(b, '\n')
	}
	mode, control := "static", "single-channel"
	if s.async {
		mode = "async"
	}
	if s.full {
		control = "full"
	}
	b = append(b, "Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: "+mode+"\nControl: "+control+"\n\n"...)
	return b
}

// command answers one command of the socket application. As in
// mod_event_socket's parse_command: connect, myevents, sendmsg, resume and
// exit work on every socket; everything else only on "full" ones, and a
// single-channel socket answers it "-ERR command not found".
func (s *socketSession) command(cmd *esl.Command) bool {
	c := s.ch
	switch cmd.Verb() {
	case "myevents":
		s.mu.Lock()
		s.myevents = true
		if f := strings.ToLower(cmd.Arg()); strings.Contains(f, "json") {
			s.format = "json"
		} else if strings.Contains(f, "xml") {
			s.format = "xml"
		}
		s.mu.Unlock()
		s.reply("+OK Events Enabled")
		return true
	case "sendmsg":
		s.sendmsg(cmd)
		return true
	case "resume":
		s.mu.Lock()
		s.resume = true
		s.mu.Unlock()
		s.reply("+OK")
		return true
	case "exit":
		s.reply("+OK bye")
		s.end("disconnect")
		return true
	}
	if !s.full {
		s.reply("-ERR command not found")
		return true
	}
	switch cmd.Verb() {
	case "event":
		f := strings.Fields(cmd.Arg())
		if len(f) == 0 || (f[0] != "plain" && f[0] != "json" && f[0] != "xml") {
			s.reply("-ERR no keywords supplied")
			break
		}
		s.sub.add(f[0], f[1:])
		s.mu.Lock()
		s.format = f[0] // one format per connection, as FreeSWITCH keeps it
		s.mu.Unlock()
		s.listen(true)
		s.reply("+OK event listener enabled " + f[0])
	case "filter":
		s.reply(filterCommand(s.sub, cmd.Arg()))
	case "nixevent":
		s.sub.nix(strings.Fields(cmd.Arg()))
		s.reply("+OK events nixed")
	case "noevents":
		s.mu.Lock()
		s.myevents = false
		s.mu.Unlock()
		s.sub.clear()
		s.reply("+OK no longer listening for events")
	case "linger":
		s.mu.Lock()
		s.linger = true
		s.mu.Unlock()
		s.reply("+OK will linger")
	case "nolinger":
		s.mu.Lock()
		s.linger = false
		s.mu.Unlock()
		s.reply("+OK will not linger")
	case "api":
		s.queue(esl.AppendFrame(nil, esl.TypeAPIResponse, []byte(c.sim.API(c.ctx, cmd.Arg()))))
	case "bgapi":
		id := cmd.Headers.Get("Job-UUID")
		if id == "" {
			id = esl.NewUUID()
		}
		c.sim.bgapi(id, cmd.Arg())
		s.queue(esl.AppendReply(nil, "+OK Job-UUID: "+id, esl.Header{Name: "Job-UUID", Value: id}))
	default:
		s.reply("-ERR command not found")
	}
	return true
}

// sendmsg queues an application or a hang-up. In async mode the reply is
// immediate and the channel runs it in turn; in static mode the reply waits
// until it has run, as the transcripts show.
func (s *socketSession) sendmsg(cmd *esl.Command) {
	target := s.ch
	if uuid := cmd.Arg(); uuid != "" && uuid != s.ch.UUID {
		if !s.full {
			s.reply("-ERR invalid session id [" + uuid + "]")
			return
		}
		if target = s.ch.sim.Channel(uuid); target == nil {
			s.reply("-ERR invalid session id [" + uuid + "]")
			return
		}
	}
	m, err := messageFrom(cmd)
	if err != nil {
		s.reply("-ERR " + err.Error())
		return
	}
	if s.async {
		// Async sockets are answered on receipt, before the message runs:
		// whatever it causes (a hang-up, a disconnect) comes after the +OK.
		s.reply("+OK")
		target.enqueue(m)
		return
	}
	m.done = make(chan *esl.Event, 1)
	replied := make(chan struct{})
	m.after = func() { s.reply("+OK"); close(replied) }
	target.enqueue(m)
	select {
	case <-replied:
	case <-target.ctx.Done():
		s.reply("+OK")
	}
}
