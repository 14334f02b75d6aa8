package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/app"
)

// placeSocketCall has the simulator hand one call to the gateway and
// returns it once the gateway holds it.
func placeSocketCall(t *testing.T, svc *Service, sim *fssim.Sim, dest string) *fssim.Channel {
	t.Helper()
	before := svc.gw.ActiveSessions()
	c, err := sim.PlaceCall(context.Background(), fssim.CallSpec{Destination: dest, CallerIDNumber: "+441234567890", Digits: "7"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return svc.gw.ActiveSessions() > before })
	// A policy learns of a call from call.started; so does this test, which
	// also guarantees the call's callctl subject is served.
	_, js := natsConn(t, infra.NATS.URL())
	callEvents(t, js, c.UUID, 1)
	return c
}

// Every callctl operation against a simulated call, in async full and in
// plain sync sockets.
func TestCallControlOperations(t *testing.T) {
	svc := gateway(t, infra.NATS.URL(), nil)
	nc, js := natsConn(t, infra.NATS.URL())
	sim := fssim.New(fssim.Options{TimeScale: 0.05})
	defer sim.Close()
	sim.SetEndpoint("user/agent-1", fssim.Endpoint{AnswerAfter: 10 * time.Millisecond, HangupAfter: 200 * time.Millisecond})
	sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8084$`, svc.SocketAddr(), false),
		{Name: "sync", Match: mustMatch(`^8085$`), Actions: []fssim.Action{{App: "set", Data: "team=blue"}, {App: "socket", Data: svc.SocketAddr()}}},
		{Name: "after-transfer", Match: mustMatch(`^9000$`), Actions: []fssim.Action{{App: "set", Data: "transferred=yes"}, {App: "park"}}},
	})

	t.Run("async full", func(t *testing.T) {
		call := placeSocketCall(t, svc, sim, "8084")
		ctl := func(cmd app.Command) app.Reply { return callctl(t, nc, call.UUID, cmd) }
		if r := ctl(app.Command{Op: "execute", App: "answer"}); !r.OK {
			t.Fatal(r.Error)
		}
		if r := ctl(app.Command{Op: "set", Name: "color", Value: "blue sky"}); !r.OK {
			t.Fatal(r.Error)
		}
		if v, _ := call.Var("color"); v != "blue sky" {
			t.Fatalf("set: %q", v)
		}
		if r := ctl(app.Command{Op: "get", Name: "color"}); !r.OK || r.Result.Value == nil || *r.Result.Value != "blue sky" {
			t.Fatalf("get: %+v %+v", r.Result, r.Error)
		}
		if r := ctl(app.Command{Op: "get", Name: "nothing"}); !r.OK || r.Result.Value != nil {
			t.Fatalf("get of an unset variable: %+v", r.Result)
		}
		r := ctl(app.Command{Op: "execute", App: "play_and_get_digits", Arg: `1 1 2 2000 # ivr/menu.wav ivr/bad.wav choice \d`, Vars: []string{"choice"}})
		if !r.OK || r.Result.Vars["choice"] != "7" {
			t.Fatalf("digits: %+v %+v", r.Result, r.Error)
		}
		// break stops a long playback at once.
		done := make(chan app.Reply, 1)
		go func() {
			r, _ := request(nc, call.UUID, app.Command{Op: "execute", App: "sleep", Arg: "600000"})
			done <- r
		}()
		time.Sleep(50 * time.Millisecond)
		if r := ctl(app.Command{Op: "break"}); !r.OK {
			t.Fatal(r.Error)
		}
		select {
		case r := <-done:
			if !r.OK {
				t.Fatalf("broken sleep: %+v", r.Error)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("break did not stop the running application")
		}
		if r := ctl(app.Command{Op: "bridge", Destination: "user/agent-1"}); !r.OK {
			t.Fatalf("bridge: %+v (the caller's channel: answered %v, cause %q)", r.Error, call.Answered(), call.Cause())
		}
		if r := ctl(app.Command{Op: "hangup", Cause: "USER_BUSY"}); !r.OK {
			t.Fatal(r.Error)
		}
		<-call.Ended
		if call.Cause() != "USER_BUSY" {
			t.Fatalf("cause %q", call.Cause())
		}
		var types []string
		for _, e := range callEvents(t, js, call.UUID, 6) {
			types = append(types, e.Type)
		}
		want := "call.started call.answered call.dtmf call.bridged call.unbridged call.hangup"
		if strings.Join(types, " ") != want {
			t.Fatalf("events %v, want %s", types, want)
		}
	})

	t.Run("sync", func(t *testing.T) {
		call := placeSocketCall(t, svc, sim, "8085")
		ctl := func(cmd app.Command) app.Reply { return callctl(t, nc, call.UUID, cmd) }
		if r := ctl(app.Command{Op: "execute", App: "answer"}); !r.OK {
			t.Fatal(r.Error)
		}
		// No api in a sync socket: variables are set as an application and
		// read from what the call's events carried.
		if r := ctl(app.Command{Op: "set", Name: "color", Value: "red"}); !r.OK {
			t.Fatal(r.Error)
		}
		if r := ctl(app.Command{Op: "get", Name: "team"}); !r.OK || r.Result.Value == nil || *r.Result.Value != "blue" {
			t.Fatalf("get in sync mode: %+v %+v", r.Result, r.Error)
		}
		if r := ctl(app.Command{Op: "bridge", OtherUUID: "some-call"}); r.OK || r.Error.Code != "not_available" {
			t.Fatalf("uuid_bridge in sync mode: %+v", r)
		}
		if r := ctl(app.Command{Op: "transfer", Destination: "9000", Dialplan: "XML", Context: "default"}); !r.OK {
			t.Fatalf("transfer: %+v", r.Error)
		}
		waitFor(t, 5*time.Second, func() bool { v, _ := call.Var("transferred"); return v == "yes" })
		call.Hangup("")
		<-call.Ended
	})
}
