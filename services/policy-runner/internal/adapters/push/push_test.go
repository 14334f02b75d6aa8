package push_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/push"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS)) }

// A policy's push.notify stores one push.requested on PUSH for the
// push-notifier, with the call and the policy's fields, and returns its
// request id; bad arguments never reach the stream.
func TestPolicyPushIsStoredForTheNotifier(t *testing.T) {
	nc, err := nats.Connect(infra.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, "PUSH"); err != nil {
		t.Fatal(err)
	}
	src := `
local id = push.notify{user = "ada", type = "voip", ttl = 30, collapse_id = "c1", data = {queue = "support"}}
assert(id == "9b0f3f7e-0000-4000-8000-000000000001.1", id)
assert(push.notify{user = "ada", type = "alert", body = "hi"} == "9b0f3f7e-0000-4000-8000-000000000001.2")
for _, bad in ipairs({{}, {user = "no spaces"}, {user = "ada", type = "sms"}, {user = "ada", ttl = -1},
    {user = "ada", data = {string.rep("x", 3000)}}}) do
  local ok, err = pcall(push.notify, bad)
  assert(not ok and string.find(err, "push.notify: "), tostring(err))
end
return id`
	prog, err := sandbox.Compile("t", src, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	call := luaapi.Call{CallID: "9b0f3f7e-0000-4000-8000-000000000001"}
	env := luaapi.Env{Ctx: ctx, Call: call, Push: &push.JetStream{JS: js, Instance: "t"}, Logger: slog.New(slog.DiscardHandler)}
	if _, err := sb.Run(ctx, prog, sandbox.Env{Install: luaapi.InstallFor(env)}); err != nil {
		t.Fatal(err)
	}

	cons, err := js.OrderedConsumer(ctx, "PUSH", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(3 * time.Second))
	if err != nil {
		t.Fatalf("no push.requested stored: %v", err)
	}
	e, err := events.Parse(m.Data())
	if err != nil {
		t.Fatal(err)
	}
	body := string(e.Data)
	for _, want := range []string{`"user":"ada"`, `"type":"voip"`, `"call_id":"` + call.CallID + `"`, `"ttl_seconds":30`,
		`"collapse_id":"c1"`, `"priority":10`, `"data":{"queue":"support"}`, `"request_id":"` + e.ID + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("push.requested data %s lacks %s", body, want)
		}
	}
	if m.Subject() != "push.ada.requested" || e.Type != "push.requested" || e.CallID != call.CallID {
		t.Fatalf("stored as %s %s %s", m.Subject(), e.Type, e.CallID)
	}
	if m, err := cons.Next(jetstream.FetchMaxWait(3 * time.Second)); err != nil || !strings.Contains(string(m.Data()), `"type":"alert"`) {
		t.Fatalf("the second push: %v", err)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
		t.Fatal("a refused push.notify reached the stream")
	}

	// The same policy run again for the call (a redelivered call.started)
	// stores nothing new: its request ids are the call's.
	if _, err := sb.Run(ctx, prog, sandbox.Env{Install: luaapi.InstallFor(env)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
		t.Fatal("a second run of the policy pushed again")
	}
}
