package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// connect is a connection to a nats-server of the test's own.
func connect(t *testing.T) *nats.Conn {
	nc, err := nats.Connect(testinfra.NewNATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// API and Send against a stand-in for the esl-gateway's fs.<node>.api
// over a real nats-server: the same replies read the same way.
func TestAPIAndSendReadTheGatewaysReplies(t *testing.T) {
	nc := connect(t)
	got := make(chan map[string]any, 16)
	sub, err := nc.Subscribe("fs.fs1.api", func(m *nats.Msg) {
		var req map[string]any
		_ = json.Unmarshal(m.Data, &req)
		got <- req
		switch req["command"] {
		case "originate ok":
			_ = m.Respond([]byte(`{"output":"+OK 1234"}`))
		case "originate busy":
			_ = m.Respond([]byte(`{"error":{"code":"command_failed","message":"-ERR USER_BUSY","cause":"USER_BUSY"}}`))
		case "garbage":
			_ = m.Respond([]byte(`<html>`))
		}
		// "silence": no reply.
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	g := New(nc)
	ways := map[string]func(ctx context.Context, node, command string) (string, error){
		"API": func(ctx context.Context, node, command string) (string, error) {
			return g.API(ctx, node, command, true, time.Second)
		},
		"Send": func(ctx context.Context, node, command string) (string, error) {
			return g.Send(ctx, node, command, true, time.Second)()
		},
	}
	for name, call := range ways {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if out, err := call(ctx, "fs1", "originate ok"); err != nil || out != "+OK 1234" {
				t.Fatalf("originate ok: %q %v", out, err)
			}
			if req := <-got; req["background"] != true || req["timeout_ms"] != float64(1000) {
				t.Fatalf("request %v", req)
			}
			_, err := call(ctx, "fs1", "originate busy")
			var ge *Error
			if !errors.As(err, &ge) || ge.Code != "command_failed" || CauseOf(err) != "USER_BUSY" {
				t.Fatalf("refused originate: %v", err)
			}
			<-got
			if _, err := call(ctx, "fs1", "garbage"); err == nil {
				t.Fatal("an unreadable reply read as success")
			}
			<-got
			if _, err := call(ctx, "fs9", "originate ok"); !errors.As(err, &ge) || ge.Code != "node_unavailable" {
				t.Fatalf("a node nobody serves: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if _, err := call(short, "fs1", "silence"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("no reply: %v", err)
			}
			<-got
		})
	}
}

// Send's request is on its way when Send returns, before anyone waits
// for the reply.
func TestSendPublishesBeforeItReturns(t *testing.T) {
	nc := connect(t)
	got := make(chan *nats.Msg, 1)
	sub, err := nc.Subscribe("fs.fs1.api", func(m *nats.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	wait := New(nc).Send(context.Background(), "fs1", "originate later", true, time.Second)
	var req *nats.Msg
	select {
	case req = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not go out before its reply was waited for")
	}
	_ = req.Respond([]byte(`{"output":"+OK"}`))
	if out, err := wait(); err != nil || out != "+OK" {
		t.Fatalf("reply %q %v", out, err)
	}
}

// Many originates at once, answered out of order: each waiter gets its
// own reply, over one subscription for them all, and nothing is left
// waiting afterwards — neither the answered nor the timed-out ones.
func TestSendsInFlightShareOneReplySubscription(t *testing.T) {
	nc := connect(t)
	const n = 200
	reqs := make(chan *nats.Msg, n)
	sub, err := nc.Subscribe("fs.fs1.api", func(m *nats.Msg) { reqs <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	g := New(nc)
	before := nc.NumSubscriptions()
	// The context bounds the wait of the one never answered.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	waits := make([]func() (string, error), n)
	for i := range waits {
		waits[i] = g.Send(ctx, "fs1", fmt.Sprint("originate ", i), true, 20*time.Second)
	}
	if got := nc.NumSubscriptions() - before; got != 1 {
		t.Fatalf("%d subscriptions for %d requests in flight, want 1", got, n)
	}
	held := make([]*nats.Msg, 0, n)
	for range n {
		select {
		case m := <-reqs:
			held = append(held, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d requests arrived", len(held), n)
		}
	}
	// Answer backwards, each with the command it answers; the last one
	// (request 0 in order) gets no answer and times out.
	for i := len(held) - 1; i >= 0; i-- {
		var req struct{ Command string }
		_ = json.Unmarshal(held[i].Data, &req)
		if req.Command == "originate 0" {
			continue
		}
		if err := held[i].Respond(fmt.Appendf(nil, `{"output":"+OK %s"}`, req.Command)); err != nil {
			t.Fatal(err)
		}
	}
	for i, wait := range waits[1:] {
		if out, err := wait(); err != nil || out != fmt.Sprintf("+OK originate %d", i+1) {
			t.Fatalf("request %d: %q %v", i+1, out, err)
		}
	}
	if _, err := waits[0](); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request 0, never answered: %v", err)
	}
	g.mu.Lock()
	left := len(g.waiting)
	g.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d replies still awaited after every wait returned", left)
	}
}
