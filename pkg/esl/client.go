package esl

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Client is one authenticated inbound connection to FreeSWITCH's
// mod_event_socket. Its methods are safe for concurrent use; each takes a
// context that bounds the wait for FreeSWITCH's answer.
type Client struct {
	*conn

	smu    sync.Mutex
	format string   // the event format last asked for ("plain" until then)
	subs   []string // event names subscribed, "ALL" included
}

// Dial connects to addr, authenticates with password and starts reading.
// A wrong password is ErrAuth; an ACL refusal is ErrRejected. The context
// bounds the dial and the handshake only.
func Dial(ctx context.Context, addr, password string, opts ConnOptions) (*Client, error) {
	opts = opts.withDefaults()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("esl: dial %s: %w", addr, err)
	}
	rd := NewReader(nc, opts.Limits)
	if err := handshake(ctx, nc, rd, password); err != nil {
		nc.Close()
		return nil, fmt.Errorf("esl: %s: %w", addr, err)
	}
	c := &Client{conn: newConn(nc, rd, opts), format: "plain"}
	c.start()
	return c, nil
}

// handshake reads the auth/request banner and answers it.
func handshake(ctx context.Context, nc net.Conn, rd *Reader, password string) error {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	m, err := rd.ReadMessage()
	if err != nil {
		return fmt.Errorf("read auth banner: %w", err)
	}
	switch m.Type {
	case TypeAuthRequest:
	case TypeRudeRejection:
		return ErrRejected
	default:
		return fmt.Errorf("expected auth/request, got %q", m.Type)
	}
	cmd, err := AppendCommand(nil, "auth "+password, nil, nil)
	if err != nil {
		return fmt.Errorf("auth: password: %w", ErrInjection)
	}
	if _, err := nc.Write(cmd); err != nil {
		return fmt.Errorf("send auth: %w", err)
	}
	for {
		m, err = rd.ReadMessage()
		if err != nil {
			return fmt.Errorf("read auth reply: %w", err)
		}
		if m.Type == TypeCommandReply {
			break
		}
	}
	if !m.OK() {
		return fmt.Errorf("%w (%s)", ErrAuth, m.ReplyText())
	}
	return nil
}

// BGAPI runs a command in the background and waits for its BACKGROUND_JOB
// result. The job is correlated by a Job-UUID the client chooses, so the
// result can never be confused with another's; BACKGROUND_JOB is subscribed
// to first if it is not already.
func (c *Client) BGAPI(ctx context.Context, cmd string) (string, error) {
	if err := c.ensureSubscribed(ctx, "BACKGROUND_JOB"); err != nil {
		return "", err
	}
	id := NewUUID()
	w, unregister := c.register(c.jobs, id)
	if _, err := c.roundTrip(ctx, "bgapi "+cmd, Headers{{"Job-UUID", id}}, nil); err != nil {
		unregister()
		return "", err
	}
	ev, err := c.waitEvent(ctx, "bgapi "+firstWord(cmd), w, unregister)
	if err != nil {
		return "", err
	}
	out := strings.TrimRight(string(ev.Body), "\n")
	if strings.HasPrefix(out, "-ERR") {
		return out, &CommandError{Command: "bgapi " + cmd, Reply: out}
	}
	return out, nil
}

func (c *Client) ensureSubscribed(ctx context.Context, name string) error {
	c.smu.Lock()
	have := slices.Contains(c.subs, "ALL") || slices.Contains(c.subs, name)
	format := c.format
	c.smu.Unlock()
	if have {
		return nil
	}
	return c.Subscribe(ctx, format, name)
}

// Subscribe asks for events in format "plain", "json" or "xml"; names are
// event names, "ALL", or "CUSTOM sub::class ...". Subscriptions add up, as
// in FreeSWITCH.
func (c *Client) Subscribe(ctx context.Context, format string, names ...string) error {
	switch format {
	case "plain", "json", "xml":
	default:
		return fmt.Errorf("esl: event format %q: want plain, json or xml", format)
	}
	if len(names) == 0 {
		return fmt.Errorf("esl: subscribe: no event names")
	}
	if _, err := c.roundTrip(ctx, "event "+format+" "+strings.Join(names, " "), nil, nil); err != nil {
		return err
	}
	c.smu.Lock()
	c.format = format
	for _, n := range names {
		for _, f := range strings.Fields(n) {
			if !slices.Contains(c.subs, f) {
				c.subs = append(c.subs, f)
			}
		}
	}
	c.smu.Unlock()
	return nil
}

// NixEvent unsubscribes from the named events.
func (c *Client) NixEvent(ctx context.Context, names ...string) error {
	if _, err := c.roundTrip(ctx, "nixevent "+strings.Join(names, " "), nil, nil); err != nil {
		return err
	}
	c.smu.Lock()
	c.subs = slices.DeleteFunc(c.subs, func(s string) bool { return slices.Contains(names, s) })
	c.smu.Unlock()
	return nil
}

// NoEvents drops every subscription.
func (c *Client) NoEvents(ctx context.Context) error {
	if _, err := c.roundTrip(ctx, "noevents", nil, nil); err != nil {
		return err
	}
	c.smu.Lock()
	c.subs = nil
	c.smu.Unlock()
	return nil
}

// Filter lets through only events whose header equals value (filters on
// different values add up).
func (c *Client) Filter(ctx context.Context, header, value string) error {
	_, err := c.roundTrip(ctx, "filter "+header+" "+value, nil, nil)
	return err
}

// FilterDelete removes a filter; value "" removes every filter on header.
func (c *Client) FilterDelete(ctx context.Context, header, value string) error {
	_, err := c.roundTrip(ctx, strings.TrimSpace("filter delete "+header+" "+value), nil, nil)
	return err
}

// SendMsg sends a sendmsg to a channel with the given headers.
func (c *Client) SendMsg(ctx context.Context, uuid string, hdrs Headers, body []byte) error {
	_, err := c.roundTrip(ctx, "sendmsg "+uuid, hdrs, body)
	return err
}

// Execute runs app on channel uuid and returns its CHANNEL_EXECUTE_COMPLETE.
// The caller must be subscribed to CHANNEL_EXECUTE_COMPLETE for that channel.
func (c *Client) Execute(ctx context.Context, uuid, app, arg string, o ExecOptions) (*Event, error) {
	return c.execute(ctx, uuid, app, arg, o)
}

// Hangup hangs channel uuid up with cause.
func (c *Client) Hangup(ctx context.Context, uuid, cause string) error {
	return c.hangup(ctx, uuid, cause)
}

// SendEvent fires an event into FreeSWITCH and returns the UUID it gave it.
func (c *Client) SendEvent(ctx context.Context, name string, hdrs Headers, body []byte) (string, error) {
	m, err := c.roundTrip(ctx, "sendevent "+name, hdrs, body)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.TrimPrefix(m.Result(), "+OK")), nil
}

// Exit asks FreeSWITCH to close the connection, and closes it.
func (c *Client) Exit(ctx context.Context) error {
	_, err := c.roundTrip(ctx, "exit", nil, nil)
	c.Close()
	return err
}

// Command sends any other command ("log 7", "nolog", "linger") and returns
// FreeSWITCH's reply; a "-ERR" reply is a *CommandError.
func (c *Client) Command(ctx context.Context, line string, hdrs Headers) (*Message, error) {
	return c.roundTrip(ctx, line, hdrs, nil)
}
