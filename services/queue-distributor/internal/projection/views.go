package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// ErrNotFound is a queue, agent or member the projection does not hold.
var ErrNotFound = errors.New("not found")

// QueueView is a queue as the projection holds it.
type QueueView struct {
	domain.Queue
	Version uint64 `json:"version"`
	Joined  int64  `json:"joined_total"`
}

// AgentView is an agent with its live status and state.
type AgentView struct {
	domain.Agent
	Status     string         `json:"status"`
	State      string         `json:"state"`
	Version    uint64         `json:"version"`
	Calls      int64          `json:"calls_answered"`
	TalkMS     int64          `json:"talk_ms"`
	NoAnswer   int64          `json:"no_answer_count"`
	IdleSince  int64          `json:"idle_since_ms,omitempty"`
	ReadyAt    int64          `json:"ready_at_ms,omitempty"`
	OfferCall  string         `json:"offer_call,omitempty"`
	OfferID    string         `json:"offer_id,omitempty"`
	OfferQueue string         `json:"offer_queue,omitempty"`
	Owner      string         `json:"owner,omitempty"`
	Leg        string         `json:"leg,omitempty"`
	OfferedAt  int64          `json:"offered_at_ms,omitempty"`
	AnsweredAt int64          `json:"answered_at_ms,omitempty"`
	Node       string         `json:"node,omitempty"`
	WaitMS     int64          `json:"wait_ms,omitempty"`
	Tiers      map[string]int `json:"-"`
}

// MemberView is a member with its live state.
type MemberView struct {
	domain.Member
	State    string   `json:"state"`
	OfferID  string   `json:"offer_id,omitempty"`
	Agents   []string `json:"offered_to,omitempty"`
	Attempts int64    `json:"attempts,omitempty"`
	Version  uint64   `json:"version"`
}

func u64(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
func i64(s string) int64  { v, _ := strconv.ParseInt(s, 10, 64); return v }

// Queue reads one queue.
func (s *Store) Queue(ctx context.Context, name string) (QueueView, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("q", name)).Result()
	if err != nil {
		return QueueView{}, fmt.Errorf("read queue %s: %w", name, err)
	}
	if len(h) == 0 {
		return QueueView{}, fmt.Errorf("queue %s: %w", name, ErrNotFound)
	}
	var v QueueView
	if err := json.Unmarshal([]byte(h["cfg"]), &v.Queue); err != nil {
		return QueueView{}, fmt.Errorf("queue %s in redis: %w", name, err)
	}
	v.Version, v.Joined = u64(h["ver"]), i64(h["joined"])
	return v, nil
}

// QueueNames lists the queues, sorted.
func (s *Store) QueueNames(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, s.key("queues")).Result()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

func agentView(id string, h map[string]string) (AgentView, error) {
	var v AgentView
	if err := json.Unmarshal([]byte(h["cfg"]), &v.Agent); err != nil {
		return v, fmt.Errorf("agent %s in redis: %w", id, err)
	}
	v.Status, v.State, v.Version = h["status"], h["state"], u64(h["ver"])
	v.Calls, v.TalkMS, v.NoAnswer = i64(h["calls"]), i64(h["talk_ms"]), i64(h["noans"])
	v.IdleSince, v.ReadyAt = i64(h["idle_since"]), i64(h["ready_at"])
	v.OfferCall, v.OfferID, v.OfferQueue, v.Owner, v.Leg = h["offer_call"], h["offer_id"], h["offer_queue"], h["owner"], h["leg"]
	v.OfferedAt, v.AnsweredAt = i64(h["offered_at"]), i64(h["answered_at"])
	v.Node, v.WaitMS = h["node"], i64(h["wait_ms"])
	return v, nil
}

// Agent reads one agent.
func (s *Store) Agent(ctx context.Context, id string) (AgentView, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("a", id)).Result()
	if err != nil {
		return AgentView{}, fmt.Errorf("read agent %s: %w", id, err)
	}
	if len(h) == 0 {
		return AgentView{}, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return agentView(id, h)
}

// Agents reads every agent (sorted by id), optionally only those in
// state (e.g. "in_call").
func (s *Store) Agents(ctx context.Context, state string) ([]AgentView, error) {
	set := "agents"
	if state == "offered" {
		set = "offered" // indexed: recovery reads it every heartbeat
	}
	ids, err := s.rdb.SMembers(ctx, s.key(set)).Result()
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	sort.Strings(ids)
	out := make([]AgentView, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 500)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, n)
		for i, id := range ids[:n] {
			cmds[i] = pipe.HGetAll(ctx, s.key("a", id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("read agents: %w", err)
		}
		for i, c := range cmds {
			h := c.Val()
			if len(h) == 0 || (state != "" && h["state"] != state) {
				continue
			}
			v, err := agentView(ids[i], h)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		ids = ids[n:]
	}
	return out, nil
}

// Tiers lists a queue's tiers, by level then position.
func (s *Store) Tiers(ctx context.Context, queue string) ([]domain.Tier, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("tier", queue)).Result()
	if err != nil {
		return nil, fmt.Errorf("read tiers of %s: %w", queue, err)
	}
	out := make([]domain.Tier, 0, len(h))
	for a, v := range h {
		l, p, _ := strings.Cut(v, ",")
		out = append(out, domain.Tier{Queue: queue, Agent: a, Level: int(i64(l)), Position: int(i64(p))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Level != out[j].Level {
			return out[i].Level < out[j].Level
		}
		if out[i].Position != out[j].Position {
			return out[i].Position < out[j].Position
		}
		return out[i].Agent < out[j].Agent
	})
	return out, nil
}

// Member reads one member.
func (s *Store) Member(ctx context.Context, callID string) (MemberView, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("m", callID)).Result()
	if err != nil {
		return MemberView{}, fmt.Errorf("read member %s: %w", callID, err)
	}
	return memberView(callID, h)
}

func memberView(callID string, h map[string]string) (MemberView, error) {
	if len(h) == 0 {
		return MemberView{}, fmt.Errorf("member %s: %w", callID, ErrNotFound)
	}
	var v MemberView
	if err := json.Unmarshal([]byte(h["cfg"]), &v.Member); err != nil {
		return v, fmt.Errorf("member %s in redis: %w", callID, err)
	}
	v.Queue = h["queue"]
	v.State, v.OfferID, v.Attempts, v.Version = h["state"], h["offer_id"], i64(h["attempts"]), u64(h["ver"])
	if a := h["agents"]; a != "" {
		_ = json.Unmarshal([]byte(a), &v.Agents)
	}
	return v, nil
}

// Members lists a queue's members: waiting ones in the order they will
// be served, then those being offered. They are read in pipelined
// batches: a queue may hold a thousand callers, read every second by the
// announcements.
func (s *Store) Members(ctx context.Context, queue string) ([]MemberView, error) {
	ids, err := s.rdb.SMembers(ctx, s.key("members", queue)).Result()
	if err != nil {
		return nil, fmt.Errorf("list members of %s: %w", queue, err)
	}
	out := make([]MemberView, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 500)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, n)
		for i, id := range ids[:n] {
			cmds[i] = pipe.HGetAll(ctx, s.key("m", id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("read members of %s: %w", queue, err)
		}
		for i, id := range ids[:n] {
			m, err := memberView(id, cmds[i].Val())
			if errors.Is(err, ErrNotFound) {
				continue // left between the two reads
			}
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		ids = ids[n:]
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.State == "waiting") != (b.State == "waiting") {
			return a.State == "waiting"
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if a.JoinedAt != b.JoinedAt {
			return a.JoinedAt < b.JoinedAt
		}
		return a.CallID < b.CallID
	})
	return out, nil
}

// AgentInCall is the agent bridged to callID ("" when none).
func (s *Store) AgentInCall(ctx context.Context, callID string) (string, error) {
	a, err := s.rdb.Get(ctx, s.key("incall", callID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return a, err
}

// Expired lists members whose max wait has passed by now.
func (s *Store) Expired(ctx context.Context, now int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.key("deadline"), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now, 10), Count: 1000}).Result()
	if err != nil {
		return nil, fmt.Errorf("list expired members: %w", err)
	}
	return ids, nil
}

// NextDeadline is the earliest member deadline (zero: none).
func (s *Store) NextDeadline(ctx context.Context) (int64, error) {
	z, err := s.rdb.ZRangeWithScores(ctx, s.key("deadline"), 0, 0).Result()
	if err != nil || len(z) == 0 {
		return 0, err
	}
	return int64(z[0].Score), nil
}

// Heartbeat says this instance is alive for ttl.
func (s *Store) Heartbeat(ctx context.Context, instance string, ttl time.Duration) error {
	return s.rdb.Set(ctx, s.key("lock", "instance", instance), "1", ttl).Err()
}

// Alive reports whether instance's heartbeat is current.
func (s *Store) Alive(ctx context.Context, instance string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.key("lock", "instance", instance)).Result()
	return n == 1, err
}

// LoadOutcome returns the outcome of the call's last time in a queue (nil:
// none), as queue.enqueue returns it. The projection keeps it from the
// member's end event (answered: the agent's wrap-up) for ten minutes
// from when it happened, or until the call joins a queue again; a
// rebuild restores what is younger.
func (s *Store) LoadOutcome(ctx context.Context, callID string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.key("outcome", callID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// LoggedIn reports whether an agent of queue is logged in (available or
// on a break, as mod_callcenter counts agents): one read of the queue's
// counts, which the events keep, however many agents the queue has.
func (s *Store) LoggedIn(ctx context.Context, queue string) (bool, error) {
	n, err := s.rdb.HMGet(ctx, s.key("acount", queue), "available", "on_break").Result()
	if err != nil {
		return false, fmt.Errorf("agents logged in to %s: %w", queue, err)
	}
	return n[0] != nil || n[1] != nil, nil // a count of 0 is deleted
}
