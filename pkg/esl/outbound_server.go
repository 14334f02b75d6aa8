package esl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Handler runs one call handed over by FreeSWITCH's socket application. The
// session is connected (channel data read) when it is called; when it
// returns the socket is closed, which ends the call or, with
// socket_resume=true, sends it on through the dialplan. ctx is cancelled
// when the server is forced to stop.
type Handler func(ctx context.Context, s *Session)

// Server accepts the connections FreeSWITCH's dialplan `socket` application
// makes ("outbound" ESL).
type Server struct {
	Handler Handler
	Options ConnOptions
	// ConnectTimeout bounds the connect handshake. Default 5s.
	ConnectTimeout time.Duration
	// Allow, if set, decides per remote address; refused connections are
	// closed at once and reported to OnRefuse.
	Allow func(net.Addr) bool
	// MaxSessions caps concurrent sessions (0: no cap); connections beyond
	// it are closed at once and reported to OnRefuse.
	MaxSessions int
	// OnRefuse and OnError report what the server could not serve; a
	// server never logs on its own.
	OnRefuse func(remote net.Addr, reason string)
	OnError  func(remote net.Addr, err error)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{} // connected
	pending   int                   // accepted, handshake under way
	closing   bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("esl: server closed")

// Refusal reasons given to OnRefuse.
const (
	RefuseNotAllowed = "not_allowed"
	RefuseAtCapacity = "at_capacity"
	RefuseShutdown   = "shutting_down"
)

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.sessions = map[*Session]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			// Running out of file descriptors in a burst of calls must not
			// stop the listener: back off and go on, as net/http does.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("esl: accept: %w", err)
		}
		backoff = 0
		s.admit(nc)
	}
}

func (s *Server) refuse(nc net.Conn, reason string) {
	nc.Close()
	if s.OnRefuse != nil {
		s.OnRefuse(nc.RemoteAddr(), reason)
	}
}

func (s *Server) admit(nc net.Conn) {
	if s.Allow != nil && !s.Allow(nc.RemoteAddr()) {
		s.refuse(nc, RefuseNotAllowed)
		return
	}
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		s.refuse(nc, RefuseShutdown)
		return
	case s.MaxSessions > 0 && len(s.sessions)+s.pending >= s.MaxSessions:
		s.mu.Unlock()
		s.refuse(nc, RefuseAtCapacity)
		return
	}
	s.pending++
	s.wg.Add(1)
	s.mu.Unlock()
	go s.run(nc, time.Now())
}

func (s *Server) run(nc net.Conn, accepted time.Time) {
	defer s.wg.Done()
	timeout := s.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	sess := &Session{Accepted: accepted}
	err := sess.connect(ctx, nc, s.Options.withDefaults())
	cancel()
	s.mu.Lock()
	s.pending--
	if err == nil {
		s.sessions[sess] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		nc.Close()
		if s.OnError != nil {
			s.OnError(nc.RemoteAddr(), fmt.Errorf("connect handshake: %w", err))
		}
		return
	}
	defer func() {
		sess.Close()
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	s.Handler(s.ctx, sess)
}

// Sessions is the number of live sessions, handshakes included.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions) + s.pending
}

// Shutdown stops accepting, then waits for live sessions to finish until ctx
// ends; sessions still running then are cancelled and closed. It returns
// ctx's error if it had to force them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.fail(ErrClosed)
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
