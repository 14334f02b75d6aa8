package service

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
)

// Counts gone wrong — here nobody logged in, so every caller would be
// turned away with no_agents — are found by the audit and rebuilt from
// the agents; callers join again, and the repair shows in the metrics.
func TestTheAuditRepairsWrongAgentCounts(t *testing.T) {
	e := newEnv(t)
	e.stop()
	e.cfg.CountAuditEvery = 200 * time.Millisecond
	e.start()
	e.setup("longest-idle-agent", "1001")
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	key := e.prefix + "acount:support"
	e.eventually("the agent counted", func() bool { return rdb.HGet(ctx, key, "available").Val() == "1" })
	rdb.HDel(ctx, key, "available", "idle", "in:1")
	e.eventually("the counts repaired", func() bool { return rdb.HGet(ctx, key, "available").Val() == "1" })
	if got := rdb.HGetAll(ctx, key).Val(); got["idle"] != "1" || got["in:1"] != "1" {
		t.Fatalf("counts after the audit %v", got)
	}
	e.caller("c-audit")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-audit", Queue: "support", Node: "fs1"}); r.Error != nil || r.Member == nil {
		t.Fatalf("enqueue after the repair: %+v", r)
	}
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "switchyard_qd_agent_count_repairs_total 1\n") {
		t.Errorf("no repair counted in /metrics:\n%s", grepLines(string(body), "count_repairs"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
