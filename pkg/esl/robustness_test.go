package esl_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/switchyard-voice/switchyard/pkg/esl"
)

// fakeChannelData is a minimal connect reply: what FreeSWITCH's socket
// application answers "connect" with, here for a made-up channel.
func fakeChannelData(uuid string) string {
	return "Event-Name: CHANNEL_DATA\nUnique-ID: " + uuid + "\nCaller-Caller-ID-Number: %2B441234567890\n" +
		"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
}

// dialAsFS connects to srv like the socket application and answers connect.
func dialAsFS(t *testing.T, addr, uuid string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	if err != nil || line != "connect\n" {
		t.Fatalf("want connect, got %q %v", line, err)
	}
	br.ReadString('\n')
	if _, err := nc.Write([]byte(fakeChannelData(uuid))); err != nil {
		t.Fatal(err)
	}
	return nc, br
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// checkNoLeak fails if goroutines started during the test are still
// running once it is over.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// A peer that sends garbage costs only its own session: the others go on.
func TestServerBadPeerCostsOnlyItsSession(t *testing.T) {
	checkNoLeak(t)
	ctx := testCtx(t)
	var mu sync.Mutex
	ended := map[string]error{}
	srv := &Server{Handler: func(_ context.Context, s *Session) {
		s.MyEvents(ctx)
		<-s.Done()
		mu.Lock()
		ended[s.UUID()] = s.Err()
		mu.Unlock()
	}}
	ln := listen(t)
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	good, goodR := dialAsFS(t, ln.Addr().String(), "good")
	defer good.Close()
	bad, badR := dialAsFS(t, ln.Addr().String(), "bad")
	defer bad.Close()
	for _, r := range []*bufio.Reader{goodR, badR} {
		if line, _ := r.ReadString('\n'); line != "myevents\n" {
			t.Fatalf("want myevents, got %q", line)
		}
		r.ReadString('\n')
	}
	good.Write([]byte("Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n"))
	bad.Write([]byte("Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n"))
	bad.Write([]byte("Content-Length: 99999999\nContent-Type: text/event-plain\n\n"))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return ended["bad"] != nil })
	var fe *FrameError
	mu.Lock()
	badErr := ended["bad"]
	mu.Unlock()
	if !errors.As(badErr, &fe) || fe.Reason != ReasonFrameTooLarge {
		t.Fatalf("bad session ended with %v", badErr)
	}
	// The good session still works: an event reaches it and it is alive.
	if srv.Sessions() != 1 {
		t.Fatalf("sessions: %d, want the good one", srv.Sessions())
	}
	good.Close()
	waitFor(t, func() bool { return srv.Sessions() == 0 })
}

func TestServerRefusals(t *testing.T) {
	checkNoLeak(t)
	release := make(chan struct{})
	var mu sync.Mutex
	var reasons []string
	srv := &Server{
		MaxSessions: 1,
		Allow:       func(a net.Addr) bool { return true },
		OnRefuse: func(_ net.Addr, reason string) {
			mu.Lock()
			reasons = append(reasons, reason)
			mu.Unlock()
		},
		Handler: func(_ context.Context, s *Session) { <-release },
	}
	ln := listen(t)
	go srv.Serve(ln)
	first, _ := dialAsFS(t, ln.Addr().String(), "one")
	defer first.Close()
	waitFor(t, func() bool { return srv.Sessions() == 1 })
	second, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := second.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Fatalf("over capacity: read %d %v, want the socket closed", n, err)
	}
	second.Close()
	close(release)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) != 1 || reasons[0] != RefuseAtCapacity {
		t.Fatalf("refusals: %v", reasons)
	}

	denied := &Server{Allow: func(net.Addr) bool { return false }, Handler: func(context.Context, *Session) {}}
	ln2 := listen(t)
	go denied.Serve(ln2)
	defer denied.Shutdown(context.Background())
	nc, err := net.Dial("tcp", ln2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := nc.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Fatalf("not allowed: read %d %v, want the socket closed before connect", n, err)
	}
}

// A peer that never answers connect is dropped after ConnectTimeout.
func TestServerSilentPeer(t *testing.T) {
	checkNoLeak(t)
	errs := make(chan error, 1)
	srv := &Server{
		ConnectTimeout: 100 * time.Millisecond,
		OnError:        func(_ net.Addr, err error) { errs <- err },
		Handler:        func(context.Context, *Session) { t.Error("handler ran for a silent peer") },
	}
	ln := listen(t)
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "connect handshake") {
			t.Fatalf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("silent peer never dropped")
	}
}

// Shutdown lets a session finish; past its deadline it cancels and closes.
func TestServerShutdownDrainsThenForces(t *testing.T) {
	checkNoLeak(t)
	finish := make(chan struct{})
	srv := &Server{Handler: func(ctx context.Context, s *Session) {
		select {
		case <-finish:
		case <-ctx.Done():
		}
	}}
	ln := listen(t)
	go srv.Serve(ln)
	nc, _ := dialAsFS(t, ln.Addr().String(), "draining")
	defer nc.Close()
	waitFor(t, func() bool { return srv.Sessions() == 1 })
	go func() { time.Sleep(50 * time.Millisecond); close(finish) }()
	if err := srv.Shutdown(testCtx(t)); err != nil {
		t.Fatalf("drain: %v", err)
	}

	stuck := &Server{Handler: func(ctx context.Context, s *Session) { <-ctx.Done() }}
	ln2 := listen(t)
	go stuck.Serve(ln2)
	nc2, _ := dialAsFS(t, ln2.Addr().String(), "stuck")
	defer nc2.Close()
	waitFor(t, func() bool { return stuck.Sessions() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := stuck.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forced shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", ln2.Addr().String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// fakeInbound accepts one client, authenticates it and hands the raw
// connection to script.
func fakeInbound(t *testing.T, script func(net.Conn, *bufio.Reader)) string {
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		nc.Write([]byte("Content-Type: auth/request\n\n"))
		br.ReadString('\n')
		br.ReadString('\n')
		nc.Write([]byte("Content-Type: command/reply\nReply-Text: +OK accepted\n\n"))
		script(nc, br)
	}()
	return ln.Addr().String()
}

func TestClientDeadlineOnSilentFreeSWITCH(t *testing.T) {
	checkNoLeak(t)
	hold := make(chan struct{})
	defer close(hold)
	addr := fakeInbound(t, func(net.Conn, *bufio.Reader) { <-hold })
	c, err := Dial(testCtx(t), addr, "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.API(ctx, "status"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("api against a silent server: %v", err)
	}
}

func TestClientSlowConsumerIsClosedNotBlocked(t *testing.T) {
	checkNoLeak(t)
	block := make(chan struct{})
	addr := fakeInbound(t, func(nc net.Conn, _ *bufio.Reader) {
		body := "Event-Name: HEARTBEAT\n\n"
		frame := "Content-Length: " + strconv.Itoa(len(body)) + "\nContent-Type: text/event-plain\n\n" + body
		for i := 0; i < 100; i++ {
			if _, err := nc.Write([]byte(frame)); err != nil {
				return
			}
		}
		<-block
	})
	c, err := Dial(testCtx(t), addr, "ClueCon", ConnOptions{MaxQueuedEvents: 10, OnEvent: func(*Event) { <-block }})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a flood into a stuck consumer did not close the connection")
	}
	if !errors.Is(c.Err(), ErrSlowConsumer) {
		t.Fatalf("closed with %v", c.Err())
	}
	close(block)
	c.Close()
}

func TestClientHalfClosedSocket(t *testing.T) {
	checkNoLeak(t)
	addr := fakeInbound(t, func(nc net.Conn, br *bufio.Reader) {
		nc.Write([]byte("Content-Type: api/response\nContent-Length: 50\n\nonly part"))
		nc.(*net.TCPConn).CloseWrite()
		br.ReadString('\n')
	})
	c, err := Dial(testCtx(t), addr, "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.API(testCtx(t), "status")
	var fe *FrameError
	if !errors.Is(err, ErrClosed) || !errors.As(err, &fe) || fe.Reason != ReasonTruncated {
		t.Fatalf("half-closed mid-frame: %v", err)
	}
}

func TestInboundReconnectsAndResubscribes(t *testing.T) {
	checkNoLeak(t)
	ln := listen(t)
	defer ln.Close()
	subs := make(chan string, 4)
	go func() {
		for i := 0; i < 2; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(nc)
			nc.Write([]byte("Content-Type: auth/request\n\n"))
			br.ReadString('\n')
			br.ReadString('\n')
			nc.Write([]byte("Content-Type: command/reply\nReply-Text: +OK accepted\n\n"))
			line, _ := br.ReadString('\n')
			br.ReadString('\n')
			subs <- strings.TrimSpace(line)
			nc.Write([]byte("Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n"))
			if i == 0 {
				nc.Close() // FreeSWITCH restarts
			} else {
				defer nc.Close()
				br.ReadString('\n') // hold until the client goes
			}
		}
	}()
	in := NewInbound(InboundConfig{
		Addr: ln.Addr().String(), Password: "ClueCon",
		Backoff:   Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		OnConnect: func(ctx context.Context, c *Client) error { return c.Subscribe(ctx, "plain", "CHANNEL_ANSWER") },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- in.Run(ctx) }()
	for i := 0; i < 2; i++ {
		select {
		case s := <-subs:
			if s != "event plain CHANNEL_ANSWER" {
				t.Fatalf("connection %d subscribed with %q", i, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d never subscribed", i)
		}
	}
	waitFor(t, func() bool { return in.State().Connected })
	cancel()
	<-done
	if _, err := in.Client(); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("after Run: %v", err)
	}
}

func TestBackoffJitterStaysInBounds(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n := 0; n < 40; n++ {
		d := b.Delay(n)
		ceiling := min(time.Second, 100*time.Millisecond<<min(n, 20))
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, ceiling/2, ceiling)
		}
	}
}

// A reply that arrives just before FreeSWITCH closes the socket is the
// command's answer, not "connection closed".
func TestReplyJustBeforeCloseWins(t *testing.T) {
	for i := 0; i < 50; i++ {
		addr := fakeInbound(t, func(nc net.Conn, br *bufio.Reader) {
			br.ReadString('\n')
			br.ReadString('\n')
			nc.Write([]byte("Content-Type: api/response\nContent-Length: 4\n\n+OK\n"))
		}) // returns: the fake closes the socket right after the reply
		c, err := Dial(testCtx(t), addr, "ClueCon", ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.API(testCtx(t), "status")
		c.Close()
		if err != nil || out != "+OK" {
			t.Fatalf("attempt %d: %q %v", i, out, err)
		}
	}
}
