package fssim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// socketServer runs an outbound ESL server (pkg/esl) with handler and
// returns its address.
func socketServer(t *testing.T, h esl.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &esl.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

func waitDone(t *testing.T, c *Channel) {
	t.Helper()
	select {
	case <-c.Ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("channel %s did not end", c.UUID)
	}
}

// A caller dials 8084; the dialplan hands the call to a socket; the
// application answers, plays, collects the digits the caller presses and
// hangs up — and sees FreeSWITCH's events and disconnect notice.
func TestSocketCallAsyncFull(t *testing.T) {
	ctx := testCtx(t)
	type outcome struct {
		async, full bool
		policy      string
		responses   []string
		digits      string
		notice      string
		events      []string
	}
	got := make(chan outcome, 1)
	addr := socketServer(t, func(_ context.Context, s *esl.Session) {
		var o outcome
		var mu sync.Mutex
		s.SetEventHandler(func(ev *esl.Event) { mu.Lock(); o.events = append(o.events, ev.Name()); mu.Unlock() })
		o.async, o.full, o.policy = s.Async, s.Full, s.ChannelData.Get("variable_switchyard_policy")
		s.MyEvents(ctx)
		s.Linger(ctx)
		for _, step := range [][2]string{{"answer", ""}, {"playback", "ivr/welcome.wav"}, {"playback", "/nonexistent/file.wav"},
			{"play_and_get_digits", `1 4 2 2000 # ivr/menu.wav ivr/bad.wav digits \d+`}} {
			ev, err := s.Execute(ctx, step[0], step[1], esl.ExecOptions{Lock: true})
			if err != nil {
				t.Error(err)
				return
			}
			o.responses = append(o.responses, ev.Get("Application-Response"))
			if step[0] == "play_and_get_digits" {
				o.digits = ev.Get("variable_digits")
			}
		}
		s.Hangup(ctx, "NORMAL_CLEARING")
		// Drained, not Done: the hang-up events read before the socket
		// closed may still be on their way to the handler at Done.
		<-s.Drained()
		if n := s.DisconnectNotice(); n != nil {
			o.notice = n.Headers.Get("Content-Disposition")
		}
		mu.Lock()
		got <- o
		mu.Unlock()
	})
	sim, _ := newSim(t, Options{Dialplan: DefaultDialplan(addr)})
	call, err := sim.PlaceCall(ctx, CallSpec{Destination: "8084", CallerIDNumber: "+441234567890", CallerIDName: "Alice", Digits: "42#", DigitsAfter: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := <-got
	waitDone(t, call)
	if !o.async || !o.full || o.policy != "default" {
		t.Errorf("socket mode async=%v full=%v policy=%q", o.async, o.full, o.policy)
	}
	if strings.Join(o.responses, "|") != "_none_|FILE PLAYED|FILE NOT FOUND|_none_" || o.digits != "42" {
		t.Errorf("responses %v digits %q", o.responses, o.digits)
	}
	if o.notice != "linger" || call.Cause() != "NORMAL_CLEARING" {
		t.Errorf("notice %q cause %q", o.notice, call.Cause())
	}
	evs := strings.Join(o.events, " ")
	for _, want := range []string{"CHANNEL_ANSWER", "DTMF", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"} {
		if !strings.Contains(evs, want) {
			t.Errorf("the socket did not get %s: %s", want, evs)
		}
	}
}

func TestSocketCallSync(t *testing.T) {
	ctx := testCtx(t)
	result := make(chan error, 1)
	addr := socketServer(t, func(_ context.Context, s *esl.Session) {
		if s.Async || s.Full {
			result <- errors.New("a plain socket came as async/full")
			return
		}
		s.MyEvents(ctx)
		if _, err := s.Execute(ctx, "answer", "", esl.ExecOptions{}); err != nil {
			result <- err
			return
		}
		_, err := s.API(ctx, "status")
		var ce *esl.CommandError
		if !errors.As(err, &ce) || ce.Cause() != "command not found" {
			result <- fmt.Errorf("api in a sync socket: %v", err)
			return
		}
		s.Hangup(ctx, "NORMAL_CLEARING")
		<-s.Done()
		if n := s.DisconnectNotice(); n == nil || n.Headers.Get("Content-Disposition") != "disconnect" {
			result <- fmt.Errorf("notice %+v", n)
			return
		}
		result <- nil
	})
	sim, _ := newSim(t, Options{Dialplan: DefaultDialplan(addr)})
	call, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8085", CallerIDNumber: "1000"})
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	waitDone(t, call)
}

// With socket_resume the dialplan goes on when the application closes the
// socket (or cannot be reached); without it the call ends.
func TestSocketResume(t *testing.T) {
	ctx := testCtx(t)
	addr := socketServer(t, func(_ context.Context, s *esl.Session) {
		s.MyEvents(ctx)
		s.Execute(ctx, "answer", "", esl.ExecOptions{})
	}) // returns: the server closes the socket
	sim, _ := newSim(t, Options{Dialplan: DefaultDialplan(addr)})

	resumed, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8086", CallerIDNumber: "1000"})
	waitFor(t, func() bool { v, _ := resumed.Var("resumed_after_socket"); return v == "yes" })
	resumed.Hangup("NORMAL_CLEARING")
	waitDone(t, resumed)

	ended, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8084", CallerIDNumber: "1000"})
	waitDone(t, ended)
	if _, ok := ended.Var("resumed_after_socket"); ok {
		t.Fatal("a call without socket_resume went on through the dialplan")
	}

	// Nobody listening: with resume the call parks, without it it fails.
	sim.SetDialplan(DefaultDialplan("127.0.0.1:1"))
	lost, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8084", CallerIDNumber: "1000"})
	waitDone(t, lost)
	if lost.Cause() != "DESTINATION_OUT_OF_ORDER" {
		t.Fatalf("unreachable socket: cause %q", lost.Cause())
	}
	parked, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8086", CallerIDNumber: "1000"})
	waitFor(t, func() bool { v, _ := parked.Var("resumed_after_socket"); return v == "yes" })
	parked.Hangup("")
	waitDone(t, parked)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestOriginateCauses(t *testing.T) {
	ctx := testCtx(t)
	sim, addr := newSim(t, Options{})
	sim.SetEndpoint("user/1000", Endpoint{AnswerAfter: 10 * time.Millisecond})
	sim.SetEndpoint("user/reject", Endpoint{Fail: "CALL_REJECTED"})
	sim.SetEndpoint("user/busy", Endpoint{Fail: "USER_BUSY"})
	sim.SetEndpoint("user/sleepy", Endpoint{NoAnswer: true})
	sim.SetGateway("carrier", true)
	sim.SetGateway("broken", false)
	c, err := esl.Dial(ctx, addr, "ClueCon", esl.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct{ dial, cause string }{
		{"user/1000", ""},
		{"{origination_caller_id_number=+4412345,ignore_early_media=true}user/1000", ""},
		{"user/reject", "CALL_REJECTED"},
		{"user/busy", "USER_BUSY"},
		{"{originate_timeout=1}user/sleepy", "NO_ANSWER"},
		{"user/nobody", "SUBSCRIBER_ABSENT"},
		{"sofia/gateway/carrier/+15551234", ""},
		{"sofia/gateway/unknown/+15551234", "INVALID_GATEWAY"},
		{"sofia/gateway/broken/+15551234", "GATEWAY_DOWN"},
		{"loopback/nowhere/nocontext", "NO_ROUTE_DESTINATION"},
		{"unknownproto/x", "CHAN_NOT_IMPLEMENTED"},
	}
	for _, tt := range tests {
		out, err := c.API(ctx, "originate "+tt.dial+" &park()")
		var ce *esl.CommandError
		switch {
		case tt.cause == "" && (err != nil || !strings.HasPrefix(out, "+OK ")):
			t.Errorf("%s: %q %v", tt.dial, out, err)
		case tt.cause != "" && (!errors.As(err, &ce) || ce.Cause() != tt.cause):
			t.Errorf("%s: got %v, want -ERR %s", tt.dial, err, tt.cause)
		}
	}
	// bgapi carries the same causes in BACKGROUND_JOB.
	if _, err := c.BGAPI(ctx, "originate user/busy &park()"); err == nil || !strings.Contains(err.Error(), "USER_BUSY") {
		t.Errorf("bgapi busy: %v", err)
	}
	if out, err := c.API(ctx, "hupall"); err != nil || !strings.HasPrefix(out, "+OK hangup all channels") {
		t.Errorf("hupall: %q %v", out, err)
	}
}

// sendmsg execute from an inbound connection, with and without event-lock,
// completes under the Application-UUID the client chose.
func TestInboundExecuteAndEvents(t *testing.T) {
	ctx := testCtx(t)
	sim, addr := newSim(t, Options{})
	sim.SetEndpoint("user/1000", Endpoint{})
	var mu sync.Mutex
	var names []string
	c, err := esl.Dial(ctx, addr, "ClueCon", esl.ConnOptions{OnEvent: func(ev *esl.Event) {
		mu.Lock()
		names = append(names, ev.Name())
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, "json", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP"); err != nil {
		t.Fatal(err)
	}
	out, err := c.API(ctx, "originate {origination_uuid=33333333-2222-4333-8444-555555555555}user/1000 &park()")
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(strings.TrimPrefix(out, "+OK"))
	if uuid != "33333333-2222-4333-8444-555555555555" {
		t.Fatalf("origination_uuid not honoured: %s", uuid)
	}
	if err := c.Filter(ctx, "Unique-ID", uuid); err != nil {
		t.Fatal(err)
	}
	for _, lock := range []bool{false, true} {
		ev, err := c.Execute(ctx, uuid, "playback", "ivr/hello.wav", esl.ExecOptions{Lock: lock})
		if err != nil || ev.Get("Application-Response") != "FILE PLAYED" {
			t.Fatalf("execute (lock %v): %v %v", lock, ev, err)
		}
	}
	if v, err := c.API(ctx, "uuid_setvar "+uuid+" color blue"); err != nil || v != "+OK\n" && v != "+OK" {
		t.Fatalf("setvar %q %v", v, err)
	}
	if v, _ := c.API(ctx, "uuid_getvar "+uuid+" color"); v != "blue" {
		t.Fatalf("getvar %q", v)
	}
	if v, _ := c.API(ctx, "uuid_getvar "+uuid+" nothing"); v != "_undef_" {
		t.Fatalf("getvar of an unset variable %q", v)
	}
	if err := c.Hangup(ctx, uuid, "USER_BUSY"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(names, " "), "CHANNEL_HANGUP")
	})
	if _, err := c.API(ctx, "uuid_kill "+uuid); err == nil || !strings.Contains(err.Error(), "No such channel") {
		waitFor(t, func() bool { _, err := c.API(ctx, "uuid_kill "+uuid); return err != nil })
	}
}

func TestBridgeToAgent(t *testing.T) {
	ctx := testCtx(t)
	sim, _ := newSim(t, Options{})
	sim.SetEndpoint("user/agent-1", Endpoint{AnswerAfter: 20 * time.Millisecond, HangupAfter: 200 * time.Millisecond})
	var mu sync.Mutex
	var names []string
	stop := sim.Watch(func(ev *esl.Event) {
		mu.Lock()
		names = append(names, ev.Name())
		mu.Unlock()
	})
	defer stop()
	sim.SetDialplan([]Route{{Name: "to-agent", Match: mustRE(`^2000$`), Actions: []Action{{"bridge", "user/agent-1"}, {"hangup", ""}}}})
	call, _ := sim.PlaceCall(ctx, CallSpec{Destination: "2000", CallerIDNumber: "1000"})
	waitDone(t, call)
	mu.Lock()
	evs := strings.Join(names, " ")
	mu.Unlock()
	if strings.Count(evs, "CHANNEL_BRIDGE") != 2 || strings.Count(evs, "CHANNEL_UNBRIDGE") != 2 {
		t.Fatalf("bridge events: %s", evs)
	}
}

// A client that sends garbage loses its own connection; the simulator goes
// on serving the others, and an idle one is dropped.
func TestBadClients(t *testing.T) {
	ctx := testCtx(t)
	_, addr := newSim(t, Options{IdleTimeout: 200 * time.Millisecond, Limits: esl.Limits{MaxFrameBytes: 4096}})
	good, err := esl.Dial(ctx, addr, "ClueCon", esl.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write([]byte("auth ClueCon\n\napi status\nContent-Length: 999999999\n\n"))
	bad.Write([]byte(strings.Repeat("x", 8192)))
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	for {
		if _, err := bad.Read(buf); err != nil {
			break // closed by the simulator
		}
	}
	if out, err := good.API(ctx, "status"); err != nil || !strings.Contains(out, "is ready") {
		t.Fatalf("the good client suffered: %q %v", out, err)
	}
	idle, _ := net.Dial("tcp", addr)
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := idle.Read(buf) // the auth banner
	if _, err := idle.Read(buf[n:]); err == nil {
		t.Fatal("an idle connection was not dropped")
	}
}

// Many calls at once, all through a socket, and nothing is left behind.
func TestManyConcurrentCallsNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := testCtx(t)
	addr := socketServer(t, func(_ context.Context, s *esl.Session) {
		s.MyEvents(ctx)
		s.Linger(ctx)
		s.Execute(ctx, "answer", "", esl.ExecOptions{})
		s.Execute(ctx, "playback", "ivr/hold.wav", esl.ExecOptions{})
		s.Hangup(ctx, "")
		<-s.Done()
	})
	sim := New(Options{TimeScale: 0.01, Dialplan: DefaultDialplan(addr)})
	const n = 200
	calls := make([]*Channel, 0, n)
	for i := 0; i < n; i++ {
		c, err := sim.PlaceCall(ctx, CallSpec{Destination: "8084", CallerIDNumber: fmt.Sprint(1000 + i)})
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	for _, c := range calls {
		waitDone(t, c)
		if c.Cause() != "NORMAL_CLEARING" || !c.Answered() {
			t.Fatalf("call %s: cause %q answered %v", c.UUID, c.Cause(), c.Answered())
		}
	}
	sim.Close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+8 })
}

// What mod_event_socket allows a single-channel socket, and how myevents
// narrows and formats what a socket receives.
func TestSocketCommandsByControlMode(t *testing.T) {
	ctx := testCtx(t)
	type seen struct {
		linger, event, api error
		foreign            bool
	}
	got := make(chan seen, 2)
	addr := socketServer(t, func(_ context.Context, s *esl.Session) {
		var o seen
		var mu sync.Mutex
		s.SetEventHandler(func(ev *esl.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.UniqueID() != s.UUID() {
				o.foreign = true
			}
		})
		_, o.event = s.Command(ctx, "event json CHANNEL_EXECUTE_COMPLETE BACKGROUND_JOB", nil)
		s.MyEvents(ctx)
		o.linger = s.Linger(ctx)
		_, o.api = s.Command(ctx, "bgapi status", nil) // a job whose BACKGROUND_JOB has no Unique-ID
		s.Execute(ctx, "answer", "", esl.ExecOptions{})
		s.Hangup(ctx, "")
		<-s.Drained()
		mu.Lock()
		got <- o
		mu.Unlock()
	})
	sim, _ := newSim(t, Options{Dialplan: DefaultDialplan(addr)})
	full, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8084", CallerIDNumber: "1"})
	o := <-got
	if o.linger != nil || o.event != nil || o.api != nil || o.foreign {
		t.Errorf("full socket: linger %v, event %v, bgapi %v, foreign events %v", o.linger, o.event, o.api, o.foreign)
	}
	single, _ := sim.PlaceCall(ctx, CallSpec{Destination: "8085", CallerIDNumber: "2"})
	o = <-got
	var ce *esl.CommandError
	for what, err := range map[string]error{"linger": o.linger, "event": o.event, "api": o.api} {
		if !errors.As(err, &ce) || ce.Cause() != "command not found" {
			t.Errorf("single-channel socket, %s: %v, want -ERR command not found", what, err)
		}
	}
	waitDone(t, full)
	waitDone(t, single)
}
