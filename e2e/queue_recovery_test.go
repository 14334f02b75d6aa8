package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// queueSnapshot is what an operator sees of the queues: the line of
// callers, and every agent's status and state.
func queueSnapshot(qd *qdProc) string {
	var b strings.Builder
	for _, m := range qd.do("GET", "/v1/queues/support/members", nil, 200)["members"].([]any) {
		m := m.(map[string]any)
		fmt.Fprintf(&b, "member %v %v; ", m["call_id"], m["state"])
	}
	for _, a := range qd.do("GET", "/v1/agents", nil, 200)["agents"].([]any) {
		a := a.(map[string]any)
		fmt.Fprintf(&b, "agent %v %v/%v; ", a["id"], a["status"], a["state"])
	}
	q := qd.do("GET", "/v1/queues/support", nil, 200)
	fmt.Fprintf(&b, "queue %v", q["strategy"])
	return b.String()
}

var appliedRE = regexp.MustCompile(`(?m)^switchyard_qd_events_applied_total\{result="(\w+)",stream="(\w+)"\} (\d+)`)

// applied counts the projection's outcomes by result, over both streams.
func applied(t *testing.T, qd *qdProc) map[string]int {
	resp, err := http.Get("http://" + qd.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]int{}
	for _, m := range appliedRE.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[3])
		out[m[1]] += n
	}
	return out
}

// Events arriving twice or out of place over the wire change nothing,
// and a Redis flushed under a running distributor is restored by
// `queue-distributor rebuild` to what it held: the same line of callers,
// the same agents; the queue works on after.
func TestQueueStateSurvivesDuplicatesAndARedisFlush(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	redisSrv := testinfra.NewRedis(t)
	qd := startQueueDistributor(t, natsSrv.URL(), redisSrv.URL(), "qd-recovery")
	qd.do("PUT", "/v1/queues/support", map[string]any{"strategy": "ring-all"}, 201)
	for _, id := range []string{"1001", "1002"} {
		qd.do("PUT", "/v1/agents/"+id, map[string]any{"contact": "user/" + id}, 201)
		qd.do("PUT", "/v1/queues/support/tiers/"+id, map[string]any{"level": 1}, 200)
		qd.do("POST", "/v1/agents/"+id+"/login", nil, 200)
		qd.do("PUT", "/v1/agents/"+id+"/status", map[string]any{"status": "on_break"}, 200)
	}
	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	join := func(id string) {
		t.Helper()
		m, err := nc.Request("queuectl.enqueue", fmt.Appendf(nil, `{"call_id":%q,"queue":"support","node":"fs1"}`, id), 5*time.Second)
		if err != nil || !strings.Contains(string(m.Data), `"state":"waiting"`) {
			t.Fatalf("join %s: %v %s", id, err, m.Data)
		}
		time.Sleep(5 * time.Millisecond) // a distinct place in line
	}
	for _, id := range []string{"c-1", "c-2", "c-3"} {
		join(id)
	}
	before := queueSnapshot(qd)
	if !strings.Contains(before, "member c-1 waiting; member c-2 waiting; member c-3 waiting;") {
		t.Fatalf("set-up: %s", before)
	}

	// Over the wire: the last join stored again under its own Msg-Id
	// (JetStream drops it) and under a new one (a new sequence the
	// projection finds already applied in substance), and an agent state
	// change for an offer that never was.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	ignoredBefore := applied(t, qd)["ignored"]
	queues, _ := js.Stream(ctx, "QUEUES")
	last, err := queues.GetLastMsgForSubject(ctx, "queues.support.member.joined")
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := events.Parse(last.Data)
	again := &nats.Msg{Subject: last.Subject, Data: last.Data, Header: nats.Header{}}
	again.Header.Set(nats.MsgIdHdr, orig.ID)
	if ack, err := js.PublishMsg(ctx, again); err != nil || !ack.Duplicate {
		t.Fatalf("the same event again: %+v %v, want JetStream to drop it", ack, err)
	}
	copyEv := *orig
	copyEv.ID = events.NewID()
	if _, err := bus.Publish(ctx, js, last.Subject, &copyEv); err != nil {
		t.Fatal(err)
	}
	stale, _ := events.New("", "e2e", "agent.state.changed", "agents.1001.state.changed", "c-9",
		map[string]any{"state": "in_call", "call_id": "c-9", "offer_id": "never-offered", "at_ms": time.Now().UnixMilli()})
	if _, err := bus.Publish(ctx, js, "agents.1001.state.changed", stale); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both events seen and ignored by the projection", func() bool { return applied(t, qd)["ignored"] >= ignoredBefore+2 })
	if got := queueSnapshot(qd); got != before {
		t.Fatalf("after duplicate and stale events\n got %s\nwant %s", got, before)
	}

	// Redis is flushed under the running service. The operator stops it,
	// rebuilds from the streams, starts it again.
	if err := redisSrv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	qd.Stop()
	rebuild := exec.CommandContext(ctx, filepath.Join(binaries, "queue-distributor"), "rebuild")
	rebuild.Env = append(os.Environ(), "SWITCHYARD_NATS_URL="+natsSrv.URL(), "SWITCHYARD_REDIS_URL="+redisSrv.URL())
	out, err := rebuild.CombinedOutput()
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	qd.Start()
	if got := queueSnapshot(qd); got != before {
		t.Fatalf("after flush and rebuild\n got %s\nwant %s\nrebuild said: %s", got, before, out)
	}
	join("c-4")
	if got := queueSnapshot(qd); !strings.Contains(got, "member c-3 waiting; member c-4 waiting;") {
		t.Fatalf("the rebuilt queue does not take callers: %s", got)
	}
}
