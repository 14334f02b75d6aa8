package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
)

// simNode starts a FreeSWITCH simulator whose event socket is the
// gateway's node fs1.
func simNode(t *testing.T, addr string) (*fssim.Sim, string) {
	t.Helper()
	sim := fssim.New(fssim.Options{TimeScale: 0.01})
	t.Cleanup(func() { sim.Close() })
	ln, err := sim.ListenInbound(addr)
	if err != nil {
		t.Fatal(err)
	}
	sim.SetEndpoint("user/1000", fssim.Endpoint{})
	sim.SetEndpoint("user/busy", fssim.Endpoint{Fail: "USER_BUSY"})
	sim.SetEndpoint("user/reject", fssim.Endpoint{Fail: "CALL_REJECTED"})
	sim.SetEndpoint("user/sleepy", fssim.Endpoint{NoAnswer: true})
	sim.SetGateway("carrier", true)
	sim.SetGateway("broken", false)
	return sim, ln.Addr().String()
}

func rest(t *testing.T, svc *Service, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+svc.AdminAddr()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func nodeConnected(t *testing.T, svc *Service, want bool) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		for _, n := range svc.nodes.Status() {
			if n.Name == "fs1" {
				return n.Connected == want
			}
		}
		return false
	})
}

func errorOf(out map[string]any) (code, cause string) {
	e, _ := out["error"].(map[string]any)
	code, _ = e["code"].(string)
	if d, ok := e["details"].(map[string]any); ok {
		cause, _ = d["cause"].(string)
	}
	return code, cause
}

func TestOriginateThroughRESTMapsCauses(t *testing.T) {
	sim, fsAddr := simNode(t, "127.0.0.1:0")
	svc := gateway(t, infra.NATS.URL(), func(c *Config) { c.Nodes = []string{"fs1=" + fsAddr + ":ClueCon"} })
	nodeConnected(t, svc, true)

	code, out := rest(t, svc, "POST", "/v1/calls", `{"dial_string":"user/1000","caller_id_number":"+4412345","caller_id_name":"Alice Smith","variables":{"team":"sales,emea"}}`)
	if code != http.StatusCreated {
		t.Fatalf("originate: %d %v", code, out)
	}
	id, _ := out["call_id"].(string)
	ch := sim.Channel(id)
	if ch == nil {
		t.Fatalf("the simulator has no call %s", id)
	}
	if v, _ := ch.Var("team"); v != "sales,emea" {
		t.Errorf("variable with a comma arrived as %q", v)
	}
	if code, _ := rest(t, svc, "POST", "/v1/calls/"+id+"/hangup", `{"cause":"NORMAL_CLEARING"}`); code != http.StatusOK {
		t.Fatalf("hangup: %d", code)
	}
	select {
	case <-ch.Ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the call was not hung up")
	}
	if code, out := rest(t, svc, "POST", "/v1/calls/"+id+"/hangup", ``); code != http.StatusNotFound {
		t.Fatalf("hangup of a gone call: %d %v", code, out)
	}

	tests := []struct {
		body   string
		status int
		code   string
		cause  string
	}{
		{`{"dial_string":"user/busy"}`, 409, "user_busy", "USER_BUSY"},
		{`{"dial_string":"user/reject"}`, 409, "call_rejected", "CALL_REJECTED"},
		{`{"dial_string":"user/nobody"}`, 404, "subscriber_absent", "SUBSCRIBER_ABSENT"},
		{`{"dial_string":"user/sleepy","timeout_seconds":1}`, 408, "no_answer", "NO_ANSWER"},
		{`{"destination":"+15551234","gateway":"nowhere"}`, 400, "invalid_gateway", "INVALID_GATEWAY"},
		{`{"destination":"+15551234","gateway":"broken"}`, 502, "gateway_down", "GATEWAY_DOWN"},
		{`{"destination":"+15551234"}`, 400, "invalid_gateway", ""},
		{`{"dial_string":"user/1000 &park()\napi hupall"}`, 400, "invalid_dial_string", ""},
		{`{"dial_string":"user/1000","node":"fs9"}`, 400, "invalid_node", ""},
		{`{"dial_string":"user/1000","colour":"red"}`, 400, "invalid_body", ""},
	}
	defer func() {
		resp, _ := http.Get("http://" + svc.AdminAddr() + "/metrics")
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`switchyard_gateway_originate_total{result="ok"} 1`, `switchyard_gateway_originate_total{result="user_busy"} 1`} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(b, "originate_total"))
			}
		}
	}()
	for _, tt := range tests {
		code, out := rest(t, svc, "POST", "/v1/calls", tt.body)
		gotCode, gotCause := errorOf(out)
		if code != tt.status || gotCode != tt.code || gotCause != tt.cause {
			t.Errorf("%s: %d %s %s, want %d %s %s", tt.body, code, gotCode, gotCause, tt.status, tt.code, tt.cause)
		}
	}
}

func TestNodeAPIOverNATS(t *testing.T) {
	_, fsAddr := simNode(t, "127.0.0.1:0")
	svc := gateway(t, infra.NATS.URL(), func(c *Config) { c.Nodes = []string{"fs1=" + fsAddr + ":ClueCon"} })
	nodeConnected(t, svc, true)
	nc, _ := natsConn(t, infra.NATS.URL())
	api := func(body string) map[string]any {
		m, err := nc.Request("fs.fs1.api", []byte(body), 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		out := map[string]any{}
		json.Unmarshal(m.Data, &out)
		return out
	}
	if out := api(`{"command":"status"}`); !strings.Contains(fmt.Sprint(out["output"]), "is ready") {
		t.Errorf("status: %v", out)
	}
	if out := api(`{"command":"originate user/1000 &park()","background":true}`); !strings.HasPrefix(fmt.Sprint(out["output"]), "+OK ") {
		t.Errorf("bgapi originate: %v", out)
	}
	for body, want := range map[string]string{
		`{"command":"originate user/busy &park()","background":true}`: "command_failed/USER_BUSY",
		`{"command":"shutdown"}`:       "not_allowed/",
		`{"command":""}`:               "invalid_request/",
		`not json`:                     "invalid_request/",
		`{"command":"status","x":1}`:   "invalid_request/",
		`{"command":"status\n\nexit"}`: "invalid_request/",
	} {
		e, _ := api(body)["error"].(map[string]any)
		if got := fmt.Sprint(e["code"], "/", e["cause"]); strings.TrimSuffix(got, "<nil>") != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
	if _, err := nc.Request("fs.fs9.api", []byte(`{"command":"status"}`), time.Second); err != nats.ErrNoResponders {
		t.Errorf("unknown node: %v, want no responders at once", err)
	}
}

// A node that goes away is reported down and answers at once with a clear
// error; when it comes back the gateway reconnects, re-subscribes, and its
// events flow to fs.<node>.events.<NAME> again.
func TestNodeDisappearsAndReturnsWithSubscriptions(t *testing.T) {
	sim, fsAddr := simNode(t, "127.0.0.1:0")
	svc := gateway(t, infra.NATS.URL(), func(c *Config) { c.Nodes = []string{"fs1=" + fsAddr + ":ClueCon"} })
	nodeConnected(t, svc, true)
	if code, out := rest(t, svc, "POST", "/v1/nodes/fs1/subscriptions", `{"events":["CHANNEL_ANSWER","CUSTOM switchyard::test"]}`); code != 200 {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	if code, _ := rest(t, svc, "POST", "/v1/nodes/fs1/subscriptions", `{"events":["channel answer"]}`); code != 400 {
		t.Fatalf("a bad event name was accepted: %d", code)
	}
	if code, _ := rest(t, svc, "GET", "/v1/nodes/fs9/subscriptions", ``); code != 404 {
		t.Fatalf("unknown node: %d", code)
	}

	sim.Close()
	nodeConnected(t, svc, false)
	start := time.Now()
	code, out := rest(t, svc, "POST", "/v1/calls", `{"dial_string":"user/1000"}`)
	if c, _ := errorOf(out); code != 503 || c != "node_unavailable" || time.Since(start) > 2*time.Second {
		t.Fatalf("originate on a lost node: %d %v after %v", code, out, time.Since(start))
	}
	code, out = rest(t, svc, "GET", "/v1/nodes", ``)
	if nodes, _ := out["nodes"].([]any); code != 200 || len(nodes) != 1 || nodes[0].(map[string]any)["connected"] != false {
		t.Fatalf("nodes: %v", out)
	}

	sim2, _ := simNode(t, fsAddr) // FreeSWITCH restarts on the same address
	nodeConnected(t, svc, true)
	_, js := natsConn(t, infra.NATS.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// An ordered consumer is made on its first Next: start it by time, not
	// at "new", so the event cannot slip in before it exists.
	since := time.Now()
	cons, err := js.OrderedConsumer(ctx, "FSEVENTS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"fs.fs1.events.CHANNEL_ANSWER", "fs.fs1.events.CUSTOM.>"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		t.Fatal(err)
	}
	call, err := sim2.PlaceCall(ctx, fssim.CallSpec{Destination: "5000", CallerIDNumber: "1000"}) // answered and parked
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		resp, _ := http.Get("http://" + svc.AdminAddr() + "/metrics")
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("no CHANNEL_ANSWER bridged after the reconnect: %v; answered %v; nodes %+v\n%s", err, call.Answered(), svc.nodes.Status(), grepLines(b, "fs.event"))
	}
	e, _ := events.Parse(msg.Data())
	var data struct {
		Node      string            `json:"node"`
		EventName string            `json:"event_name"`
		Headers   map[string]string `json:"headers"`
	}
	e.DecodeData(&data)
	if data.Node != "fs1" || data.EventName != "CHANNEL_ANSWER" || data.Headers["Unique-ID"] != call.UUID || e.Type != "fs.event" {
		t.Fatalf("bridged event: %s %+v", e.Type, data)
	}
	call.Hangup("")

	if code, _ := rest(t, svc, "DELETE", "/v1/nodes/fs1/subscriptions/CHANNEL_ANSWER", ``); code != 204 {
		t.Fatalf("unsubscribe: %d", code)
	}
	if code, _ := rest(t, svc, "DELETE", "/v1/nodes/fs1/subscriptions/CHANNEL_ANSWER", ``); code != 404 {
		t.Fatalf("second unsubscribe: %d", code)
	}
	_, out = rest(t, svc, "GET", "/v1/nodes/fs1/subscriptions", ``)
	if evs, _ := out["events"].([]any); len(evs) != 1 || evs[0] != "CUSTOM switchyard::test" {
		t.Fatalf("subscriptions left: %v", out)
	}
}

// Connections from outside the allow-list are refused and counted.
func TestSocketAllowList(t *testing.T) {
	svc := gateway(t, infra.NATS.URL(), func(c *Config) { c.SocketAllow = []string{"10.0.0.0/8"} })
	sim := fssim.New(fssim.Options{TimeScale: 0.01, Dialplan: []fssim.Route{fssim.SocketRoute(`.`, svc.SocketAddr(), false)}})
	defer sim.Close()
	call, _ := sim.PlaceCall(context.Background(), fssim.CallSpec{Destination: "8084", CallerIDNumber: "1000"})
	select {
	case <-call.Ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a refused socket call did not end")
	}
	resp, err := http.Get("http://" + svc.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`switchyard_gateway_sessions_refused_total{reason="not_allowed"} 1`)) {
		t.Fatalf("refusal not counted:\n%s", grepLines(b, "refused"))
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
