package projection

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// step is one event of a queue's and an agent's life, every type of
// event once or more, each applied (not ignored) where it stands.
type step struct {
	typ, id string
	data    any
}

func lifeOfAQueue(at int64) []step {
	q := domain.Queue{Name: "q1", Strategy: domain.LongestIdle, ServiceLevelSeconds: 20, AbandonedResumeAllowed: true,
		DiscardAbandonedAfterSeconds: 60, TierRulesApply: true, TierRuleWaitSeconds: 5,
		SkillEscalation: []domain.Escalation{{AfterSeconds: 10, RelaxLevels: 1}}}
	a := domain.Agent{ID: "a1", Contact: "user/a1", MaxNoAnswer: 2, Skills: map[string]int{"en": 5}}
	member := func(call string) domain.MemberData {
		return domain.MemberData{Member: domain.Member{CallID: call, Queue: "q1", Node: "fs1", Priority: 1, JoinedAt: at,
			MaxWait: 60, CallerNumber: "+442071234567", Skills: map[string]int{"en": 1}}}
	}
	offered := func(offer string) step {
		return step{domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateOffered, CallID: "c1", Queue: "q1", OfferID: offer, Leg: "leg-" + offer, Owner: "i1", Node: "fs1", At: at}}
	}
	return []step{
		{domain.QueueCreated, "q1", domain.QueueData{Queue: q}},
		{domain.AgentCreated, "a1", domain.AgentData{Agent: a}},
		{domain.TierSet, "q1", domain.TierData{Agent: "a1", Level: 1, Position: 1}},
		{domain.AgentStatusChanged, "a1", domain.StatusData{Status: domain.StatusAvailable, At: at}},
		{domain.MemberJoined, "q1", member("c1")},
		offered("o1"),
		{domain.MemberOffered, "q1", domain.OfferData{CallID: "c1", OfferID: "o1", Agents: []string{"a1"}, At: at}},
		{domain.AgentOfferDeclined, "a1", domain.DeclineData{CallID: "c1", OfferID: "o1", Reason: "no_answer", NoAnswer: true, ReadyAt: at + 1000, At: at}},
		{domain.MemberRequeued, "q1", domain.MemberEndData{CallID: "c1", OfferID: "o1", Reason: "no_answer", WaitMS: 500, At: at, RetryAt: at + 1000}},
		offered("o2"),
		{domain.MemberOffered, "q1", domain.OfferData{CallID: "c1", OfferID: "o2", Agents: []string{"a1"}, At: at}},
		{domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateInCall, CallID: "c1", OfferID: "o2", Leg: "leg-o2", WaitMS: 900, At: at}},
		{domain.MemberAnswered, "q1", domain.MemberEndData{CallID: "c1", OfferID: "o2", Agent: "a1", WaitMS: 900, At: at}},
		{domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateWrapUp, CallID: "c1", TalkMS: 30000, ReadyAt: at + 5000, At: at}},
		{domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateIdle, ReadyAt: at + 5000, At: at}},
		{domain.MemberJoined, "q1", member("c2")},
		{domain.MemberAbandoned, "q1", domain.MemberEndData{CallID: "c2", Reason: "hangup", WaitMS: 2000, At: at}},
		{domain.MemberJoined, "q1", member("c3")},
		{domain.MemberExited, "q1", domain.MemberEndData{CallID: "c3", Reason: domain.OutcomeTimeout, WaitMS: 60000, At: at}},
		{domain.QueueUpdated, "q1", domain.QueueData{Queue: q}},
		{domain.AgentUpdated, "a1", domain.AgentData{Agent: a}},
		{domain.AgentStatusChanged, "a1", domain.StatusData{Status: domain.StatusOnBreak, At: at}},
		{domain.TierRemoved, "q1", domain.TierData{Agent: "a1"}},
		{domain.AgentDeleted, "a1", struct{}{}},
		{domain.QueueDeleted, "q1", struct{}{}},
	}
}

// mutations are data's variants a careless or hostile producer could
// store: each field (and each field of the queue, member and agent
// objects) missing, null, of another JSON type, nested too deep, a number
// Redis' cjson cannot write back or too long an integer; a field nobody
// knows, with any of those values; a field twice, under an escaped name or
// in capitals; data not an object.
func mutations(data []byte) map[string][]byte {
	var top map[string]any
	_ = json.Unmarshal(data, &top)
	deep := json.RawMessage(strings.Repeat("[", 40) + strings.Repeat("]", 40))
	others := map[string]any{"null": nil, "string": "x", "fraction": 1.5, "negative": -1, "array": []any{}, "object": map[string]any{}, "true": true,
		"array of number": []any{5}, "infinite": json.RawMessage("1e999"), "deeply nested": deep, "long integer": json.RawMessage("1000000000000000")}
	out := map[string][]byte{"null": []byte("null"), "array": []byte("[]"), "string": []byte(`"x"`), "number": []byte("5")}
	var walk func(path string, m map[string]any)
	walk = func(path string, m map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			delete(m, k)
			out[path+k+" missing"], _ = json.Marshal(top)
			for name, o := range others {
				m[k] = o
				out[path+k+" "+name], _ = json.Marshal(top)
			}
			m[k] = v
			if inner, ok := v.(map[string]any); ok && path == "" {
				walk(k+".", inner)
			}
		}
		// A field the domain does not know: stored as it comes.
		for name, o := range others {
			m["unknown"] = o
			out[path+"unknown "+name], _ = json.Marshal(top)
		}
		delete(m, "unknown")
	}
	walk("", top)
	// The same field twice (cjson keeps the last), under an escaped name
	// (cjson reads the escape), in capitals (cjson matches exactly).
	for k := range top {
		for _, v := range []string{`"x"`, `5`, `"offered"`} {
			out[k+" twice, first "+v] = fmt.Appendf(nil, `{%q:%s,%s`, k, v, data[1:])
			out[k+" twice, last "+v] = fmt.Appendf(nil, `%s,%q:%s}`, data[:len(data)-1], k, v)
			out[k+" escaped, last "+v] = fmt.Appendf(nil, `%s,"\u%04x%s":%s}`, data[:len(data)-1], k[0], k[1:], v)
		}
		upper := strings.Replace(string(data), `"`+k+`":`, `"`+strings.ToUpper(k)+`":`, 1)
		out[k+" in capitals"] = []byte(upper)
	}
	return out
}

// Whatever the data of one event in the log, the projection neither
// stops halfway through it nor through any event after it: data the
// scripts can read (CheckData passes) applies without an error; data
// they cannot is recorded as malformed, advancing the aggregate's
// version, and changes nothing else. Either way the agent counts still
// agree with a recount.
func TestNoEventDataStopsTheProjection(t *testing.T) {
	ctx := context.Background()
	at := time.UnixMilli(1_800_000_000_000)
	life := lifeOfAQueue(at.UnixMilli())
	tried, refused := 0, 0
	shared := newFixture(t) // one client for all: a fixture each would open 1,800 connections
	for k, bad := range life {
		valid, _ := json.Marshal(bad.data)
		if err := CheckData(bad.typ, valid); err != nil {
			t.Fatalf("step %d %s: the valid event is refused: %v", k, bad.typ, err)
		}
		for name, data := range mutations(valid) {
			tried++
			f := &fixture{t: t, s: New(shared.s.rdb, fmt.Sprintf("%scheck%d:", shared.s.prefix, tried), Limits{}), seq: map[string]uint64{}, clock: at}
			apply := func(i int, s step, data []byte) ApplyResult {
				st := domain.Stream(s.typ)
				f.seq[st]++
				ev := Event{Stream: st, Seq: f.seq[st], Type: s.typ, ID: s.id, Data: data, At: at, EventID: fmt.Sprintf("%s-%d", st, f.seq[st])}
				// The Store checks the data itself: nothing it is
				// given reaches a script unchecked.
				r, err := f.s.Apply(ctx, ev, true)
				if err != nil {
					t.Fatalf("step %d %s with %s; step %d %s: %v", k, bad.typ, name, i, s.typ, err)
				}
				if refused := CheckData(s.typ, data) != nil; refused != (r.Problem != "") {
					t.Fatalf("step %d %s with %s: problem %q, CheckData refuses it: %v", k, bad.typ, name, r.Problem, refused)
				}
				if r.Problem != "" && (r.Status != Ignored || r.Detail != Malformed) {
					t.Fatalf("step %d %s with %s (%s): %+v, want ignored as malformed", k, bad.typ, name, r.Problem, r)
				}
				return r
			}
			for i, s := range life {
				if i != k {
					raw, _ := json.Marshal(s.data)
					apply(i, s, raw)
					continue
				}
				if r := apply(i, s, data); r.Detail == Malformed {
					refused++
					// Recorded in the aggregate's version as
					// JetStream counts it.
					if v := f.version(s); v != 0 && v != f.seq[domain.Stream(s.typ)] {
						t.Fatalf("step %d %s with %s: version %d after the malformed event #%d", k, bad.typ, name, v, f.seq[domain.Stream(s.typ)])
					}
				}
				if i == k && i < len(life)-3 || i == len(life)-3 { // after it, and before the deletions
					if diff, checked, err := f.s.Recount(ctx, "q1", "", ""); err != nil || !checked || len(diff) > 0 {
						t.Fatalf("step %d %s with %s; after step %d: recount %v %v %v", k, bad.typ, name, i, diff, checked, err)
					}
				}
			}
		}
	}
	t.Logf("%d variants of %d events; %d refused as malformed", tried, len(life), refused)
	if refused == 0 || refused == tried {
		t.Fatalf("%d of %d variants refused: the check does not tell them apart", refused, tried)
	}
}

// version is the aggregate's version in the projection (0: not there).
func (f *fixture) version(s step) uint64 {
	f.t.Helper()
	if domain.Stream(s.typ) == "AGENTS" {
		a, err := f.s.Agent(context.Background(), s.id)
		if err != nil {
			return 0
		}
		return a.Version
	}
	q, err := f.s.Queue(context.Background(), s.id)
	if err != nil {
		return 0
	}
	return q.Version
}

// The writer's path (apply and decide in one script) and the batch a
// follower or a rebuild applies check the data as Apply does: a status
// change the scripts cannot read is recorded as malformed, the agent's
// version moves, and the agent keeps its status.
func TestEveryApplyPathRecordsMalformedData(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"apply and decide", "batch"} {
		t.Run(path, func(t *testing.T) {
			f := newFixture(t)
			f.queue(domain.Queue{Name: "q", Strategy: domain.LongestIdle})
			f.agent("a", "q", 1, 1, nil)
			f.seq["AGENTS"]++
			ev := Event{Stream: "AGENTS", Seq: f.seq["AGENTS"], Type: domain.AgentStatusChanged, ID: "a", Data: []byte(`{"status":"dancing"}`), At: f.clock}
			var r ApplyResult
			var err error
			if path == "batch" {
				var rs []ApplyResult
				if rs, err = f.s.ApplyBatch(ctx, []Event{ev}); len(rs) == 1 {
					r = rs[0]
				}
			} else {
				r, _, err = f.s.ApplyAndDecide(ctx, ev, "test", "o1", f.clock)
			}
			if err != nil || r.Status != Ignored || r.Detail != Malformed || !strings.Contains(r.Problem, "status") {
				t.Fatalf("%+v %v, want ignored as malformed with the status named", r, err)
			}
			a, err := f.s.Agent(ctx, "a")
			if err != nil || a.Version != ev.Seq || a.Status != domain.StatusLoggedOut {
				t.Fatalf("agent %+v %v: want version %d, still logged out", a, err, ev.Seq)
			}
		})
	}
}

// BenchmarkCheckData is CheckData's cost per event of a queue's life (a
// rebuild and the follower pay it once per event).
func BenchmarkCheckData(b *testing.B) {
	life := lifeOfAQueue(1_800_000_000_000)
	raws := make([][]byte, len(life))
	for i, s := range life {
		raws[i], _ = json.Marshal(s.data)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := CheckData(life[i%len(life)].typ, raws[i%len(life)]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCheckData: CheckData never panics, and what it accepts is one JSON
// object (or nothing) that Redis' cjson can read.
func FuzzCheckData(f *testing.F) {
	life := lifeOfAQueue(1_800_000_000_000)
	types := make([]string, len(life))
	for i, s := range life {
		types[i] = s.typ
		raw, _ := json.Marshal(s.data)
		f.Add(uint8(i), raw)
	}
	f.Add(uint8(0), []byte(`{"queue":{"strategy":"ring-all","x":[1e5,-0.5e-3,"\u00e9\n"]}}`))
	f.Add(uint8(3), []byte(` {"status" : "available" , "at_ms" : 1 } `))
	f.Fuzz(func(t *testing.T, i uint8, data []byte) {
		typ := types[int(i)%len(types)]
		if CheckData(typ, data) != nil {
			return
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("%s: accepted data that is not JSON: %q", typ, data)
		}
		if trimmed := bytes.TrimSpace(data); trimmed[0] != '{' {
			t.Fatalf("%s: accepted data that is not an object: %q", typ, data)
		}
	})
}
