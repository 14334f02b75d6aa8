package esl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/internal/fifo"
)

// Errors a caller may branch on.
var (
	// ErrAuth: FreeSWITCH refused the password.
	ErrAuth = errors.New("esl: authentication refused")
	// ErrRejected: FreeSWITCH's ACL refused the connection (text/rude-rejection).
	ErrRejected = errors.New("esl: connection rejected by FreeSWITCH's ACL")
	// ErrClosed: the connection is gone; commands fail at once.
	ErrClosed = errors.New("esl: connection closed")
	// ErrSlowConsumer: events arrived faster than OnEvent handled them and
	// the queue limit was reached; the connection was closed rather than
	// block replies behind events or drop events silently.
	ErrSlowConsumer = errors.New("esl: event consumer too slow, queue full")
)

// CommandError is a "-ERR ..." answer to a command.
type CommandError struct {
	Command string // the command line, for the message
	Reply   string // the full reply, e.g. "-ERR USER_BUSY"
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("esl: %s: %s", e.Command, e.Reply)
}

// Cause is the reply without "-ERR ", e.g. "USER_BUSY" for a failed
// originate or "no_such_command Command not found!".
func (e *CommandError) Cause() string {
	return strings.TrimSpace(strings.TrimPrefix(e.Reply, "-ERR"))
}

// ConnOptions tune one ESL connection. The zero value is usable.
type ConnOptions struct {
	Limits Limits
	// OnEvent receives every event not consumed by a waiter, in order, on
	// one goroutine owned by the connection. Nil discards them.
	OnEvent func(*Event)
	// OnMessage receives frames that are neither replies nor events:
	// log/data, disconnect notices, types FreeSWITCH may add later.
	OnMessage func(*Message)
	// OnBadEvent is told about well-framed events that failed to decode.
	OnBadEvent func(error)
	// MaxQueuedEvents bounds events waiting for OnEvent. Default 4096.
	MaxQueuedEvents int
	// WriteTimeout bounds one write; a peer that does not read for this
	// long loses the connection. Default 10s.
	WriteTimeout time.Duration
}

func (o ConnOptions) withDefaults() ConnOptions {
	o.Limits = o.Limits.withDefaults()
	if o.MaxQueuedEvents <= 0 {
		o.MaxQueuedEvents = 4096
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return o
}

// conn is the plumbing the inbound Client and the outbound Session share:
// one reader goroutine that routes replies to their waiters in order,
// BACKGROUND_JOB and CHANNEL_EXECUTE_COMPLETE events to theirs, and other
// events to OnEvent through a bounded queue, so a slow consumer can never
// hold up replies.
type conn struct {
	nc   net.Conn
	rd   *Reader
	opts ConnOptions

	wmu    sync.Mutex // serialises writes with the reply queue's order
	buf    []byte
	replyq *fifo.Queue[chan *Message] // one per command, in the order written

	mu     sync.Mutex
	jobs   map[string]chan *Event // Job-UUID → bgapi waiter
	execs  map[string]chan *Event // Application-UUID → execute waiter
	notice *Message

	events  *fifo.Queue[*Event]
	onEvent atomic.Pointer[func(*Event)]
	done    chan struct{} // closed when the connection is gone
	drained chan struct{} // closed when every event has been handed to OnEvent
	err     error         // why; set before done is closed
	once    sync.Once
	wg      sync.WaitGroup
}

func newConn(nc net.Conn, rd *Reader, opts ConnOptions) *conn {
	c := &conn{
		nc:      nc,
		rd:      rd,
		opts:    opts,
		replyq:  fifo.New[chan *Message](1024),
		jobs:    map[string]chan *Event{},
		execs:   map[string]chan *Event{},
		events:  fifo.New[*Event](opts.MaxQueuedEvents),
		done:    make(chan struct{}),
		drained: make(chan struct{}),
	}
	if opts.OnEvent != nil {
		c.onEvent.Store(&opts.OnEvent)
	}
	return c
}

// SetEventHandler replaces OnEvent for this connection: a Session's handler
// sets its own before subscribing, so each call's events reach its owner.
func (c *conn) SetEventHandler(f func(*Event)) { c.onEvent.Store(&f) }

func (c *conn) start() {
	c.wg.Add(2)
	go c.readLoop()
	go c.dispatchLoop()
}

// fail records why the connection ended and releases every waiter.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
	})
}

// Err says why the connection ended (nil while it is up).
func (c *conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Done is closed when the connection is gone. Events read before it went
// may still be on their way to OnEvent: see Drained.
func (c *conn) Done() <-chan struct{} { return c.done }

// Drained is closed once the connection is gone and OnEvent has returned
// for every event it read: nothing more will arrive.
func (c *conn) Drained() <-chan struct{} { return c.drained }

// Close closes the connection and waits for its goroutines.
func (c *conn) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// DisconnectNotice is the text/disconnect-notice FreeSWITCH sent, if any.
func (c *conn) DisconnectNotice() *Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notice
}

func (c *conn) readLoop() {
	defer c.wg.Done()
	defer c.events.Close()
	for {
		m, err := c.rd.ReadMessage()
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrClosed, err))
			return
		}
		if !c.route(m) {
			return
		}
	}
}

// route hands one frame to whoever waits for it; false ends the loop.
func (c *conn) route(m *Message) bool {
	switch m.Type {
	case TypeCommandReply, TypeAPIResponse:
		if w, ok := c.replyq.TryPop(); ok {
			w <- m
		} else {
			// A reply nobody asked for: FreeSWITCH never sends one, so the
			// stream is out of step.
			c.fail(fmt.Errorf("%w: unsolicited %s %q", ErrClosed, m.Type, m.Result()))
			return false
		}
	case TypeEventPlain, TypeEventJSON, TypeEventXML:
		ev, err := m.Event()
		if err != nil {
			if c.opts.OnBadEvent != nil {
				c.opts.OnBadEvent(err)
			}
			return true
		}
		c.claim(ev)
		if !c.events.Push(ev) {
			c.fail(ErrSlowConsumer)
			return false
		}
	case TypeDisconnectNotice:
		c.mu.Lock()
		c.notice = m
		c.mu.Unlock()
		if c.opts.OnMessage != nil {
			c.opts.OnMessage(m)
		}
	case TypeRudeRejection:
		c.fail(ErrRejected)
		return false
	default:
		if c.opts.OnMessage != nil {
			c.opts.OnMessage(m)
		}
	}
	return true
}

// claim gives an event to the bgapi or execute call waiting for it. The
// event still goes to OnEvent as well: a gateway publishes every event.
func (c *conn) claim(ev *Event) {
	var key string
	var table map[string]chan *Event
	switch ev.Name() {
	case "BACKGROUND_JOB":
		key, table = ev.Get("Job-UUID"), c.jobs
	case "CHANNEL_EXECUTE_COMPLETE":
		key, table = ev.Get("Application-UUID"), c.execs
	default:
		return
	}
	c.mu.Lock()
	w, ok := table[key]
	delete(table, key)
	c.mu.Unlock()
	if ok {
		w <- ev
	}
}

func (c *conn) dispatchLoop() {
	defer c.wg.Done()
	defer close(c.drained)
	for {
		ev, ok := c.events.Pop()
		if !ok {
			return
		}
		if f := c.onEvent.Load(); f != nil && *f != nil {
			(*f)(ev)
		}
	}
}

// roundTrip writes one command and waits for its reply.
func (c *conn) roundTrip(ctx context.Context, line string, hdrs Headers, body []byte) (*Message, error) {
	w, err := c.send(ctx, line, hdrs, body)
	if err != nil {
		return nil, err
	}
	return c.await(ctx, line, w)
}

// send writes a command and queues a waiter for its reply, atomically, so
// replies pair with commands in the order FreeSWITCH answers them.
func (c *conn) send(ctx context.Context, line string, hdrs Headers, body []byte) (chan *Message, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := AppendCommand(c.buf[:0], line, hdrs, body)
	if err != nil {
		return nil, err
	}
	c.buf = buf
	w := make(chan *Message, 1)
	if !c.replyq.Push(w) {
		return nil, fmt.Errorf("esl: %s: too many commands awaiting replies", firstWord(line))
	}
	// The write deadline guards against a stuck peer, not the caller's
	// patience: a short caller deadline expiring mid-write would cut the
	// stream and cost everyone on this connection (a whole call).
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		// The waiter stays queued; the connection is failed so nothing
		// will be paired with it.
		c.fail(fmt.Errorf("%w: write %s: %w", ErrClosed, firstWord(line), err))
		return nil, c.err
	}
	return w, nil
}

func (c *conn) await(ctx context.Context, line string, w chan *Message) (*Message, error) {
	select {
	case m := <-w:
		return c.result(line, m)
	case <-ctx.Done():
		return nil, fmt.Errorf("esl: %s: %w", firstWord(line), ctx.Err())
	case <-c.done:
		// The reply may have come just before the close: it wins.
		select {
		case m := <-w:
			return c.result(line, m)
		default:
		}
		return nil, c.err
	}
}

func (c *conn) result(line string, m *Message) (*Message, error) {
	if strings.HasPrefix(m.Result(), "-ERR") {
		return m, &CommandError{Command: redact(line), Reply: m.Result()}
	}
	return m, nil
}

// waitEvent waits for the event registered under key in table.
func (c *conn) waitEvent(ctx context.Context, what string, w chan *Event, unregister func()) (*Event, error) {
	select {
	case ev := <-w:
		return ev, nil
	case <-ctx.Done():
		unregister()
		return nil, fmt.Errorf("esl: %s: %w", what, ctx.Err())
	case <-c.done:
		unregister()
		// The event may have come just before the close: it wins.
		select {
		case ev := <-w:
			return ev, nil
		default:
		}
		return nil, c.err
	}
}

func (c *conn) register(table map[string]chan *Event, key string) (chan *Event, func()) {
	w := make(chan *Event, 1)
	c.mu.Lock()
	table[key] = w
	c.mu.Unlock()
	return w, func() {
		c.mu.Lock()
		delete(table, key)
		c.mu.Unlock()
	}
}

// API runs an api command and returns its output. A "-ERR ..." output is a
// *CommandError (originate's causes arrive this way).
func (c *conn) API(ctx context.Context, cmd string) (string, error) {
	m, err := c.roundTrip(ctx, "api "+cmd, nil, nil)
	if err != nil {
		return "", err
	}
	return m.Result(), nil
}

// ExecOptions shape one application execution.
type ExecOptions struct {
	// Lock sets event-lock: the application runs only after the ones
	// queued before it have finished.
	Lock bool
	// Loops repeats the application (execute-app-loops).
	Loops int
}

// execute sends sendmsg execute for app on uuid ("" for the outbound
// socket's own channel) and returns the CHANNEL_EXECUTE_COMPLETE that
// carries its Application-UUID. It relies on the connection receiving that
// channel's events (myevents, or an inbound subscription).
func (c *conn) execute(ctx context.Context, uuid, app, arg string, o ExecOptions) (*Event, error) {
	id := NewUUID()
	w, unregister := c.register(c.execs, id)
	if err := c.sendExecute(ctx, uuid, app, arg, o, id); err != nil {
		unregister()
		return nil, err
	}
	return c.waitEvent(ctx, "execute "+app, w, unregister)
}

func (c *conn) sendExecute(ctx context.Context, uuid, app, arg string, o ExecOptions, id string) error {
	hdrs := Headers{{"call-command", "execute"}, {"execute-app-name", app}}
	if arg != "" {
		hdrs = append(hdrs, Header{"execute-app-arg", arg})
	}
	if o.Lock {
		hdrs = append(hdrs, Header{"event-lock", "true"})
	}
	if o.Loops > 1 {
		hdrs = append(hdrs, Header{"loops", fmt.Sprint(o.Loops)})
	}
	hdrs = append(hdrs, Header{"Event-UUID", id})
	_, err := c.roundTrip(ctx, strings.TrimSpace("sendmsg "+uuid), hdrs, nil)
	if err != nil {
		return fmt.Errorf("execute %s: %w", app, err)
	}
	return nil
}

// hangup sends call-command hangup to uuid ("" for the socket's channel).
func (c *conn) hangup(ctx context.Context, uuid, cause string) error {
	if cause == "" {
		cause = "NORMAL_CLEARING"
	}
	hdrs := Headers{{"call-command", "hangup"}, {"hangup-cause", cause}}
	_, err := c.roundTrip(ctx, strings.TrimSpace("sendmsg "+uuid), hdrs, nil)
	return err
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// redact keeps passwords out of error messages and logs.
func redact(line string) string {
	if strings.HasPrefix(line, "auth ") || strings.HasPrefix(line, "userauth ") {
		return firstWord(line) + " <redacted>"
	}
	return line
}
