// Package gateway reaches FreeSWITCH through the esl-gateway: api commands
// on a node (fs.<node>.api) and commands on a caller's channel
// (callctl.<uuid>), both NATS request-reply (docs/events.md).
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Error is a command FreeSWITCH or the gateway refused.
type Error struct {
	Code    string // command_failed, call_gone, timeout, unknown_node, …
	Message string
	Cause   string // the hang-up cause of a failed originate: NO_ANSWER, USER_BUSY, …
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// CauseOf is the hang-up cause carried by err ("" when none).
func CauseOf(err error) string {
	var ge *Error
	if errors.As(err, &ge) {
		if ge.Cause != "" {
			return ge.Cause
		}
		if c, ok := strings.CutPrefix(strings.TrimSpace(ge.Message), "-ERR "); ok {
			return strings.Fields(c + " ")[0]
		}
	}
	return ""
}

// NATS is the gateway over a NATS connection.
type NATS struct {
	nc *nats.Conn

	// Replies to Send come in on one subscription to prefix+"*", each
	// to a token of its own, as nats.go's own request/reply does: a
	// subscription per originate would cost the server a SUB and an
	// UNSUB (sublist changes) ahead of and after every ring.
	mu      sync.Mutex
	prefix  string // "" until the subscription is made
	next    uint64
	waiting map[string]chan *nats.Msg
}

// New returns the gateway client.
func New(nc *nats.Conn) *NATS { return &NATS{nc: nc, waiting: map[string]chan *nats.Msg{}} }

// API runs command on node and waits for its reply; background runs it
// as bgapi (an originate waits for the far end without holding the
// node's connection).
func (g *NATS) API(ctx context.Context, node, command string, background bool, timeout time.Duration) (string, error) {
	return g.Send(ctx, node, command, background, timeout)()
}

// Send is API in two steps: the request is published before Send
// returns, on the caller's goroutine, and the returned wait blocks for
// the reply. An originate goes out without first waiting for a goroutine to be
// scheduled — on a busy machine that wait is a good part of the time
// between an agent becoming available and its phone ringing. wait must
// be called once.
func (g *NATS) Send(ctx context.Context, node, command string, background bool, timeout time.Duration) (wait func() (string, error)) {
	rctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	// A channel of one: the reply is one message.
	replies := make(chan *nats.Msg, 1)
	token, inbox, err := g.expect(replies)
	if err == nil {
		if err = g.nc.PublishRequest("fs."+node+".api", inbox, apiBody(command, background, timeout)); err != nil {
			g.forget(token)
		}
	}
	return func() (string, error) {
		defer cancel()
		if err != nil {
			return apiReply(node, command, nil, err)
		}
		defer g.forget(token)
		select {
		case msg := <-replies:
			if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
				// What the server answers a request nobody is subscribed to.
				return apiReply(node, command, nil, nats.ErrNoResponders)
			}
			return apiReply(node, command, msg, nil)
		case <-rctx.Done():
			return apiReply(node, command, nil, rctx.Err())
		}
	}
}

// expect registers ch for the reply to a new token and returns the token
// and the inbox to ask for the reply at. The replies' subscription is
// made by the first request (and again after a failure to make it).
func (g *NATS) expect(ch chan *nats.Msg) (token, inbox string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prefix == "" {
		prefix := g.nc.NewInbox() + "."
		sub, err := g.nc.Subscribe(prefix+"*", g.reply)
		if err != nil {
			return "", "", fmt.Errorf("subscribe to the gateway's replies: %w", err)
		}
		// Replies are never dropped for being too many: each has a
		// waiter (or none, and is discarded at once).
		_ = sub.SetPendingLimits(-1, -1)
		g.prefix = prefix
	}
	g.next++
	token = strconv.FormatUint(g.next, 36)
	g.waiting[token] = ch
	return token, g.prefix + token, nil
}

// reply hands a reply to its waiter; a reply nobody waits for any more
// (timed out) is dropped.
func (g *NATS) reply(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	g.mu.Lock()
	ch, ok := g.waiting[token]
	delete(g.waiting, token)
	g.mu.Unlock()
	if ok {
		ch <- m // cap 1, one reply per token
	}
}

func (g *NATS) forget(token string) {
	g.mu.Lock()
	delete(g.waiting, token)
	g.mu.Unlock()
}

func apiBody(command string, background bool, timeout time.Duration) []byte {
	body, _ := json.Marshal(map[string]any{"command": command, "background": background, "timeout_ms": timeout.Milliseconds()})
	return body
}

// apiReply reads the gateway's reply to an api command (or the error of
// the request).
func apiReply(node, command string, msg *nats.Msg, err error) (string, error) {
	if errors.Is(err, nats.ErrNoResponders) {
		return "", &Error{Code: "node_unavailable", Message: "no esl-gateway serves node " + node}
	}
	if err != nil {
		return "", fmt.Errorf("api %q on %s: %w", firstWord(command), node, err)
	}
	var r struct {
		Output string `json:"output"`
		Error  *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Cause   string `json:"cause"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "", fmt.Errorf("api %q on %s: unreadable reply: %w", firstWord(command), node, err)
	}
	if r.Error != nil {
		return "", &Error{Code: r.Error.Code, Message: r.Error.Message, Cause: r.Error.Cause}
	}
	return r.Output, nil
}

// Call runs one callctl operation on a caller's channel ("execute" with
// app and arg, "break", "hangup") and waits for its reply.
func (g *NATS) Call(ctx context.Context, callID, op, app, arg string, timeout time.Duration) error {
	body, _ := json.Marshal(map[string]any{"op": op, "app": app, "arg": arg, "timeout_ms": timeout.Milliseconds()})
	rctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	msg, err := g.nc.RequestWithContext(rctx, "callctl."+callID, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return &Error{Code: "call_gone", Message: "no gateway holds call " + callID}
	}
	if err != nil {
		return fmt.Errorf("callctl %s on %s: %w", op, callID, err)
	}
	var r struct {
		OK    bool `json:"ok"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("callctl %s on %s: unreadable reply: %w", op, callID, err)
	}
	if !r.OK && r.Error != nil {
		return &Error{Code: r.Error.Code, Message: r.Error.Message}
	}
	return nil
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
