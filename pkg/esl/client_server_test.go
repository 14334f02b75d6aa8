package esl_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/esl/esltest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientAuth(t *testing.T) {
	ctx := testCtx(t)
	rp := esltest.New(t, "inbound/01-auth-ok")
	c, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rp.Wait()
	c.Close()

	rp = esltest.New(t, "inbound/02-auth-wrong-password")
	_, err = Dial(ctx, rp.Serve(), "wrong", ConnOptions{})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the password leaks into the error: %v", err)
	}
	rp.Wait()

	rp = esltest.New(t, "inbound/17-acl-rude-rejection")
	if _, err = Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{}); !errors.Is(err, ErrRejected) {
		t.Fatalf("ACL refusal: %v, want ErrRejected", err)
	}
}

func TestClientAPIAndOriginateCauses(t *testing.T) {
	ctx := testCtx(t)
	rp := esltest.New(t, "inbound/04-api-originate")
	c, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := []struct{ cmd, out, cause string }{
		{"originate {origination_caller_id_number=+19495431333,call_direction=outbound}loopback/agent-1/agents &park()", "+OK f82403e9-7419-4c65-bc27-d00b45b7f7b6", ""},
		{"originate loopback/nonexistent-destination/nowhere &park()", "", "NO_ROUTE_DESTINATION"},
		{"originate {originate_timeout=2}loopback/noanswer-1/agents &park()", "", "NO_ANSWER"},
		{"originate loopback/busy-1/agents &park()", "", "NORMAL_CLEARING"},
		{"originate sofia/gateway/telnyx/+923244902616 &echo()", "", "CHAN_NOT_IMPLEMENTED"},
		{"originate user/1001 &echo()", "", "SUBSCRIBER_ABSENT"},
		{"uuid_kill f82403e9-7419-4c65-bc27-d00b45b7f7b6", "+OK", ""},
	}
	for _, call := range calls {
		out, err := c.API(ctx, call.cmd)
		var ce *CommandError
		switch {
		case call.cause == "" && (err != nil || out != call.out):
			t.Errorf("%s: %q %v", call.cmd, out, err)
		case call.cause != "" && (!errors.As(err, &ce) || ce.Cause() != call.cause):
			t.Errorf("%s: want cause %s, got %v", call.cmd, call.cause, err)
		}
	}
	rp.Wait()
}

func TestClientEventsInOrder(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct{ name, format string }{
		{"inbound/06-events-plain-call", "plain"},
		{"inbound/07-events-json-call", "json"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			rp := esltest.New(t, tc.name)
			var mu sync.Mutex
			var names []string
			hungup := make(chan struct{})
			c, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{OnEvent: func(ev *Event) {
				mu.Lock()
				defer mu.Unlock()
				if ev.UniqueID() != "11111111-2222-4333-8444-555555555555" {
					return
				}
				names = append(names, ev.Name())
				if ev.Name() == "CHANNEL_DESTROY" {
					close(hungup)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Subscribe(ctx, tc.format, "ALL"); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{
				"originate {origination_uuid=11111111-2222-4333-8444-555555555555}loopback/agent-9/agents &park()",
				"uuid_send_dtmf 11111111-2222-4333-8444-555555555555 12#",
				"uuid_kill 11111111-2222-4333-8444-555555555555 NORMAL_CLEARING",
			} {
				if _, err := c.API(ctx, cmd); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-hungup:
			case <-ctx.Done():
				t.Fatal("no CHANNEL_DESTROY")
			}
			mu.Lock()
			got := strings.Join(names, " ")
			mu.Unlock()
			if !strings.HasPrefix(got, "CHANNEL_UUID CHANNEL_OUTGOING CHANNEL_STATE CHANNEL_CREATE") || !strings.Contains(got, "CHANNEL_ANSWER") ||
				strings.Index(got, "CHANNEL_HANGUP ") > strings.Index(got, "CHANNEL_HANGUP_COMPLETE") {
				t.Fatalf("events out of order: %s", got)
			}
			rp.Wait()
		})
	}
}

func TestClientFiltersAndUnknownCommand(t *testing.T) {
	ctx := testCtx(t)
	rp := esltest.New(t, "inbound/09-filter-nixevent-noevents")
	c, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { return c.Subscribe(ctx, "plain", "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP") },
		func() error { return c.Filter(ctx, "Unique-ID", "22222222-2222-4333-8444-555555555555") },
		func() error {
			_, err := c.API(ctx, "originate {origination_uuid=22222222-2222-4333-8444-555555555555}loopback/agent-7/agents &park()")
			return err
		},
		func() error { _, err := c.API(ctx, "originate loopback/agent-6/agents &park()"); return err },
		func() error { return c.FilterDelete(ctx, "Unique-ID", "22222222-2222-4333-8444-555555555555") },
		func() error { return c.NixEvent(ctx, "CHANNEL_ANSWER") },
		func() error { return c.NoEvents(ctx) },
		func() error { _, err := c.API(ctx, "hupall NORMAL_CLEARING"); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	rp.Wait()

	rp = esltest.New(t, "inbound/12-api-unknown-command")
	c2, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.API(ctx, "no_such_command arg")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Cause() != "no_such_command Command not found!" {
		t.Fatalf("unknown command: %v", err)
	}
	rp.Wait()
}

func TestClientSendEventLogAndExit(t *testing.T) {
	ctx := testCtx(t)
	rp := esltest.New(t, "inbound/10-sendevent")
	echoed := make(chan *Event, 1)
	c, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{OnEvent: func(ev *Event) { echoed <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, "plain", "CUSTOM switchyard::test"); err != nil {
		t.Fatal(err)
	}
	id, err := c.SendEvent(ctx, "CUSTOM", Headers{{"Event-Subclass", "switchyard::test"}, {"X-Key", "some value"}}, []byte("hello body"))
	if err != nil || id != "87d8aa91-ff29-4685-ba40-4e751e53e74f" {
		t.Fatalf("sendevent: %q %v", id, err)
	}
	select {
	case ev := <-echoed:
		if string(ev.Body) != "hello body" {
			t.Fatalf("echo body %q", ev.Body)
		}
	case <-ctx.Done():
		t.Fatal("sendevent not echoed")
	}
	rp.Wait()

	rp = esltest.New(t, "inbound/11-log-data")
	logs := make(chan *Message, 32)
	c2, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{OnMessage: func(m *Message) { logs <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, cmd := range []string{"log 7", "api originate loopback/agent-5/agents &park()", "api hupall", "nolog"} {
		m, err := c2.Command(ctx, cmd, nil)
		if err != nil || !m.OK() {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	if len(logs) != 16 || (<-logs).Type != TypeLogData {
		t.Fatalf("log frames handed up: %d", len(logs))
	}
	rp.Wait()

	rp = esltest.New(t, "inbound/14-exit")
	c3, err := Dial(ctx, rp.Serve(), "ClueCon", ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Exit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.API(ctx, "status"); !errors.Is(err, ErrClosed) {
		t.Fatalf("command after exit: %v, want ErrClosed at once", err)
	}
	rp.Wait()
}

func TestOutboundAsyncFullSession(t *testing.T) {
	ctx := testCtx(t)
	rp := esltest.New(t, "outbound/01-async-full-session")
	type result struct {
		app, resp string
		err       error
	}
	results := make(chan result, 8)
	var session *Session
	handled := make(chan struct{})
	srv := &Server{Handler: func(_ context.Context, s *Session) {
		defer close(handled)
		session = s
		run := func(app, arg string, lock bool) {
			ev, err := s.Execute(ctx, app, arg, ExecOptions{Lock: lock})
			if err != nil {
				results <- result{app: app, err: err}
				return
			}
			results <- result{app, ev.Get("Application-Response"), nil}
		}
		if err := s.MyEvents(ctx); err != nil {
			t.Error(err)
			return
		}
		if err := s.Linger(ctx); err != nil {
			t.Error(err)
			return
		}
		run("answer", "", false)
		run("playback", "tone_stream://%(500,0,440)", true)
		run("playback", "/nonexistent/file.wav", false)
		done := make(chan struct{})
		go func() {
			run("play_and_get_digits", `1 3 1 2000 # tone_stream://%(100,0,350) silence_stream://250 digits \d+`, false)
			close(done)
		}()
		// The recording asks for the variable while the digits are being
		// collected: wait until FreeSWITCH has the play_and_get_digits.
		waitFor(t, func() bool { return rp.Received() >= 7 })
		out, err := s.API(ctx, "uuid_getvar ecfdcace-7879-4df8-8ff8-78cb02e4a8c8 switchyard_policy")
		if err != nil || out != "default" {
			t.Errorf("api in the socket: %q %v", out, err)
		}
		run("set", "switchyard_test=yes", true)
		if _, err := s.ExecuteAsync(ctx, "hangup", "NORMAL_CLEARING", ExecOptions{}); err != nil {
			t.Error(err)
		}
		<-done
		<-s.Done()
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	rp.Dial(ln.Addr().String())
	rp.Wait()
	<-handled
	// play_and_get_digits and set complete on their own goroutines: compare
	// what completed, not the order the goroutines report it in.
	want := map[result]int{{"answer", "_none_", nil}: 1, {"playback", "FILE PLAYED", nil}: 1, {"playback", "FILE NOT FOUND", nil}: 1,
		{"set", "_none_", nil}: 1, {"play_and_get_digits", "_none_", nil}: 1}
	got := map[result]int{}
	for range 5 {
		got[<-results]++
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("results %v, want %v", got, want)
			break
		}
	}
	if !session.Async || !session.Full || session.UUID() != "ecfdcace-7879-4df8-8ff8-78cb02e4a8c8" {
		t.Errorf("session: async %v full %v uuid %s", session.Async, session.Full, session.UUID())
	}
	if session.ChannelData.Get("variable_switchyard_policy") != "default" {
		t.Errorf("channel variables not in the channel data")
	}
	n := session.DisconnectNotice()
	if n == nil || n.Headers.Get("Content-Disposition") != "linger" {
		t.Errorf("linger disconnect notice: %+v", n)
	}
}

func TestOutboundSyncSession(t *testing.T) {
	ctx := testCtx(t)
	errs := make(chan error, 4)
	srv := &Server{Handler: func(_ context.Context, s *Session) {
		if s.Async || s.Full {
			errs <- errors.New("static single-channel socket taken for async full")
		}
		errs <- s.MyEvents(ctx)
		_, err := s.Execute(ctx, "answer", "", ExecOptions{})
		errs <- err
		_, err = s.API(ctx, "status")
		var ce *CommandError
		if !errors.As(err, &ce) || ce.Cause() != "command not found" {
			errs <- errors.New("api in a sync socket: want -ERR command not found")
		}
		ev, err := s.Execute(ctx, "playback", "tone_stream://%(300,0,440)", ExecOptions{})
		if err == nil && ev.Get("Application-Response") != "FILE PLAYED" {
			err = errors.New("playback response " + ev.Get("Application-Response"))
		}
		errs <- err
		errs <- s.Hangup(ctx, "NORMAL_CLEARING")
		<-s.Done()
		close(errs)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	rp := esltest.New(t, "outbound/02-sync-session")
	rp.Dial(ln.Addr().String())
	rp.Wait()
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
