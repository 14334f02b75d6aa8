package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/connector"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS)) }

// proxy answers connector.query as the connector-proxy does on the wire
// (docs/events.md), recording each request.
func proxy(t *testing.T, answer func(req map[string]any) (string, time.Duration)) <-chan map[string]any {
	nc, err := nats.Connect(infra.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	got := make(chan map[string]any, 8)
	nc.QueueSubscribe(connector.Subject, "connector-proxy", func(m *nats.Msg) {
		var req map[string]any
		json.Unmarshal(m.Data, &req)
		got <- req
		body, delay := answer(req)
		time.Sleep(delay)
		m.Respond([]byte(body))
	})
	nc.Flush()
	return got
}

func run(t *testing.T, c luaapi.Connector, src string) error {
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	prog, err := sandbox.Compile("t", src, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env := luaapi.Env{Ctx: context.Background(), Call: luaapi.Call{CallID: "c-1"}, Connector: c, Logger: slog.New(slog.DiscardHandler)}
	_, err = sb.Run(context.Background(), prog, sandbox.Env{Install: luaapi.InstallFor(env)})
	return err
}

// A policy's look-up reaches the proxy with the tenant, its params apart
// from the query, its deadline and the call; the result comes back as a
// table.
func TestPolicyLookupOnTheWire(t *testing.T) {
	reqs := proxy(t, func(map[string]any) (string, time.Duration) {
		return `{"result":{"records":[{"Tier__c":"VIP","Score":7}],"total_size":1,"done":true},"source":"upstream"}`, 0
	})
	nc, _ := nats.Connect(infra.NATS.URL())
	defer nc.Close()
	err := run(t, connector.New(nc, "acme"), `
local r = connector.query{connector = "salesforce", query = "SELECT Tier__c FROM Account WHERE Phone = :phone",
  params = {phone = "+44' OR Name LIKE '%"}, timeout = 800}
assert(r.records[1].Tier__c == "VIP" and r.records[1].Score == 7 and r.done == true)`)
	if err != nil {
		t.Fatal(err)
	}
	req := <-reqs
	b, _ := json.Marshal(req)
	want := `{"call_id":"c-1","connector":"salesforce","org":"acme","params":{"phone":"+44' OR Name LIKE '%"},"query":"SELECT Tier__c FROM Account WHERE Phone = :phone","timeout_ms":800}`
	if string(b) != want {
		t.Fatalf("request\n got %s\nwant %s", b, want)
	}
}

// Whatever goes wrong, the policy gets a catchable error naming it, in
// time: the proxy's error code, a proxy that does not answer by the
// deadline, no proxy at all.
func TestLookupFailuresAreCatchable(t *testing.T) {
	nc, _ := nats.Connect(infra.NATS.URL())
	defer nc.Close()
	c := connector.New(nc, "acme")
	t.Run("no proxy", func(t *testing.T) {
		_, err := c.Query(context.Background(), luaapi.Call{}, luaapi.ConnectorQuery{Connector: "salesforce", Query: "x"})
		if !errors.Is(err, luaapi.ErrNotAvailable) {
			t.Fatalf("err %v", err)
		}
	})
	for _, tc := range []struct {
		name, body string
		delay      time.Duration
		code       string
	}{
		{"breaker open", `{"error":{"code":"breaker_open","message":"salesforce failed repeatedly"}}`, 0, "breaker_open"},
		{"too slow", `{"result":{}}`, time.Second, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy(t, func(map[string]any) (string, time.Duration) { return tc.body, tc.delay })
			start := time.Now()
			_, err := c.Query(context.Background(), luaapi.Call{}, luaapi.ConnectorQuery{Connector: "salesforce", Query: "x", Timeout: 200 * time.Millisecond})
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
			if took := time.Since(start); took > 200*time.Millisecond+500*time.Millisecond {
				t.Fatalf("took %v for a 200 ms deadline", took)
			}
		})
	}
	if err := run(t, c, `local ok, err = pcall(connector.query, {connector = "salesforce", query = "x", timeout = 20000})
assert(not ok and string.find(err, "timeout 20000"), err)`); err != nil {
		t.Fatal(err)
	}
}
