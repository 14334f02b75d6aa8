package esl

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Session is one call FreeSWITCH handed over through the socket
// application.
type Session struct {
	*conn
	// ChannelData is the channel as FreeSWITCH described it on connect.
	ChannelData *Event
	// Async is true for "socket ... async" (Socket-Mode: async), where
	// commands are answered at once and run in order; in static mode each
	// command's reply waits for it to finish.
	Async bool
	// Full is true for "socket ... full" (Control: full): api and other
	// channels' commands are allowed.
	Full bool
	// Accepted is when the server accepted the socket.
	Accepted time.Time
}

// UUID is the controlled channel's Unique-ID.
func (s *Session) UUID() string { return s.ChannelData.UniqueID() }

// connect sends "connect" and reads the channel data FreeSWITCH answers
// with: URL-encoded headers in the frame's own header block, and Reply-Text
// "%2BOK%0A".
func (s *Session) connect(ctx context.Context, nc net.Conn, opts ConnOptions) error {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := nc.Write([]byte("connect\n\n")); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	rd := NewReader(nc, opts.Limits)
	m, err := rd.ReadMessage()
	if err != nil {
		return fmt.Errorf("read channel data: %w", err)
	}
	if m.Type != TypeCommandReply || !m.OK() {
		return fmt.Errorf("connect answered %q %q, want channel data", m.Type, m.ReplyText())
	}
	s.ChannelData = m.ChannelData()
	if s.UUID() == "" {
		return fmt.Errorf("channel data without a Unique-ID")
	}
	s.Async = m.Headers.Get("Socket-Mode") == "async"
	s.Full = m.Headers.Get("Control") == "full"
	nc.SetDeadline(time.Time{})
	s.conn = newConn(nc, rd, opts)
	s.start()
	return nil
}

// MyEvents subscribes to this channel's events, in plain format.
func (s *Session) MyEvents(ctx context.Context) error {
	_, err := s.roundTrip(ctx, "myevents", nil, nil)
	return err
}

// Linger keeps the socket open after hang-up until FreeSWITCH has sent the
// channel's last events (CHANNEL_HANGUP_COMPLETE), so none is lost.
func (s *Session) Linger(ctx context.Context) error {
	_, err := s.roundTrip(ctx, "linger", nil, nil)
	return err
}

// Resume makes the dialplan continue after the socket application when this
// socket closes (the effect of socket_resume=true).
func (s *Session) Resume(ctx context.Context) error {
	_, err := s.roundTrip(ctx, "resume", nil, nil)
	return err
}

// Execute runs app on the channel and returns its CHANNEL_EXECUTE_COMPLETE
// (Application-Response, variables such as collected digits). It needs
// MyEvents. A hang-up does not stop the wait: FreeSWITCH still completes
// the application; a closed socket does.
func (s *Session) Execute(ctx context.Context, app, arg string, o ExecOptions) (*Event, error) {
	return s.execute(ctx, "", app, arg, o)
}

// Hangup hangs the channel up with cause.
func (s *Session) Hangup(ctx context.Context, cause string) error {
	return s.hangup(ctx, "", cause)
}

// Exit asks FreeSWITCH to end the socket session.
func (s *Session) Exit(ctx context.Context) error {
	_, err := s.roundTrip(ctx, "exit", nil, nil)
	return err
}

// Command sends any other command ("event plain DTMF", "filter ...",
// "nolinger") and returns its reply.
func (s *Session) Command(ctx context.Context, line string, hdrs Headers) (*Message, error) {
	return s.roundTrip(ctx, line, hdrs, nil)
}

// ExecuteAsync sends an application and returns its Application-UUID once
// FreeSWITCH has accepted it, without waiting for it to finish (a hangup
// application, a background playback).
func (s *Session) ExecuteAsync(ctx context.Context, app, arg string, o ExecOptions) (string, error) {
	id := NewUUID()
	return id, s.sendExecute(ctx, "", app, arg, o, id)
}
