// Package projection is the current state of queues and agents in Redis,
// derived from the QUEUES and AGENTS event streams. Every change is one
// Redis Lua script, so an event is applied whole or not at all, together
// with the stream sequence it came from (a redelivered event is applied
// once), and an offer is decided and reserved in one step that no other
// distributor can interleave with.
package projection

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

var (
	//go:embed lua/prelude.lua
	prelude string
	//go:embed lua/event.lua
	eventSrc string
	//go:embed lua/apply.lua
	applySrc string
	//go:embed lua/apply_batch.lua
	applyBatchSrc string
	//go:embed lua/decide.lua
	decideSrc string
	//go:embed lua/apply_decide.lua
	applyDecideSrc string
	//go:embed lua/release.lua
	releaseSrc string
	//go:embed lua/wake.lua
	wakeSrc string
	//go:embed lua/stats.lua
	statsSrc string
	//go:embed lua/recount.lua
	recountSrc string
)

// Limits bound the work of one decision.
type Limits struct {
	RingAllMax int // agents rung at once for ring-all (default 32)
	MemberScan int // waiting members considered per decision (default 16)
	AgentScan  int // idle agents examined per member for skills (default 512)
	// IDWindow is how many of each stream's latest sequences have their
	// event ids remembered, so a copy stored again under a new message id
	// is refused (default 100,000: about 10 MB of Redis per stream).
	IDWindow int
}

// Store is the projection in one Redis database under a key prefix.
type Store struct {
	rdb                                                                   redis.UniversalClient
	prefix                                                                string
	lim                                                                   Limits
	apply, applyDecide, applyBatch, decide, release, wake, stats, recount *redis.Script
	versions                                                              versions
}

// New returns the projection under prefix (e.g. "sy:").
func New(rdb redis.UniversalClient, prefix string, lim Limits) *Store {
	if lim.RingAllMax <= 0 {
		lim.RingAllMax = 32
	}
	if lim.MemberScan <= 0 {
		lim.MemberScan = 16
	}
	if lim.AgentScan <= 0 {
		lim.AgentScan = 512
	}
	if lim.IDWindow <= 0 {
		lim.IDWindow = 100_000
	}
	// A script is the prelude, the libraries it uses and what it runs.
	script := func(parts ...string) *redis.Script {
		return redis.NewScript(prelude + "\n" + strings.Join(parts, "\n"))
	}
	return &Store{rdb: rdb, prefix: prefix, lim: lim,
		apply:       script(eventSrc, applySrc, "return apply_argv()"),
		applyDecide: script(eventSrc, applySrc, decideSrc, applyDecideSrc),
		applyBatch:  script(eventSrc, applyBatchSrc),
		// ARGV: prefix, queue, now (ms), owner, offer id, only this call's
		// offer, then the limits.
		decide: script(decideSrc, "return decide(ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], "+
			"{tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])})"),
		release: script(releaseSrc), wake: script(wakeSrc), stats: script(statsSrc), recount: script(recountSrc)}
}

// Client is the Redis client, for readiness checks.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

// Outcome of applying one event.
const (
	Applied = "applied" // the state changed
	Dup     = "dup"     // already applied (a redelivery)
	Gap     = "gap"     // an earlier event is not applied yet (strict mode)
	Ignored = "ignored" // applied to the sequence, but the state refused it (stale or out of order)
)

// ApplyResult says what an event did.
type ApplyResult struct {
	Status string
	Detail string   // why it was ignored; "max_no_answer" when a decline put the agent on break
	Queues []string // queues where something became offerable: look at them
	// Problem, when not empty, is why the event could not be applied
	// (its Event.Problem, or its data failing CheckData): it was
	// recorded as Malformed.
	Problem string
}

// Event is one stored event, as the projection needs it.
type Event struct {
	Stream string
	Seq    uint64
	Type   string
	ID     string // the aggregate: queue name or agent id
	Data   json.RawMessage
	At     time.Time
	// EventID is the envelope's id: an event applied once under it is
	// refused when a copy comes again under another sequence. Empty: not
	// checked.
	EventID string
	// Problem, when not empty, says why the event cannot be applied (not
	// an envelope, off its subject): it is recorded as Malformed — its
	// sequence, its aggregate's version — and changes nothing else. Data
	// the scripts cannot read is found by the Store itself (CheckData).
	Problem string
}

// Malformed is the detail of an event applied for its Problem.
const Malformed = "malformed"

// wire is what the scripts are given for ev, the one way events reach
// them: an event with a Problem, or whose data CheckData refuses, goes as
// "<queue|agent>.malformed" with no data and no id, which every script
// records and ignores; problem says why.
func (ev Event) wire() (typ, eventID string, data []byte, problem string) {
	problem = ev.Problem
	if problem == "" {
		if err := CheckData(ev.Type, ev.Data); err != nil {
			problem = err.Error()
		}
	}
	if problem != "" {
		root := "agent"
		if ev.Stream == "QUEUES" {
			root = "queue"
		}
		return root + "." + Malformed, "", []byte("{}"), problem
	}
	data = ev.Data
	if len(data) == 0 {
		data = []byte("{}")
	}
	return ev.Type, ev.EventID, data, ""
}

// Apply applies ev once. strict refuses to skip a sequence (the writer
// applying its own event before the consumer gets there); the consumer,
// which sees the stream in order, passes strict=false.
func (s *Store) Apply(ctx context.Context, ev Event, strict bool) (ApplyResult, error) {
	mode := "gaps"
	if strict {
		mode = "strict"
	}
	args, problem := s.applyArgs(ev, mode)
	res, err := s.apply.Run(ctx, s.rdb, nil, args...).StringSlice()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply %s #%d (%s %s) to redis: %w", ev.Stream, ev.Seq, ev.Type, ev.ID, err)
	}
	r := applyResult(res)
	r.Problem = problem
	s.versions.noted(ev, r.Status)
	return r, nil
}

// ApplyAndDecide is Apply in strict mode followed, in the same script,
// by Decide in the first queue the event made offerable that has an
// offer to make (nil: none). The queues are all still in the result:
// after one offer, more may be possible. A decision that fails leaves
// the event applied: the result is returned with a *DecideError.
func (s *Store) ApplyAndDecide(ctx context.Context, ev Event, owner, offerID string, now time.Time) (ApplyResult, *Offer, error) {
	args, problem := s.applyArgs(ev, "strict")
	args = append(args, now.UnixMilli(), owner, offerID, s.lim.RingAllMax, s.lim.MemberScan, s.lim.AgentScan)
	res, err := s.applyDecide.Run(ctx, s.rdb, nil, args...).Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("the script returned %d values, want 3", len(res))
	}
	var applied, decided []string
	if err == nil {
		applied, err = stringsOf(res[0])
	}
	if err == nil {
		decided, err = stringsOf(res[1])
	}
	if err != nil {
		return ApplyResult{}, nil, fmt.Errorf("apply %s #%d (%s %s) to redis and decide: %w", ev.Stream, ev.Seq, ev.Type, ev.ID, err)
	}
	r := applyResult(applied)
	r.Problem = problem
	s.versions.noted(ev, r.Status)
	if msg, _ := res[2].(string); msg != "" {
		return r, nil, &DecideError{errors.New(msg)}
	}
	if len(decided) == 0 {
		return r, nil, nil
	}
	o, err := parseOffer(decided[0], offerID, decided[1:])
	if err != nil {
		return r, nil, &DecideError{err}
	}
	return r, o, nil
}

// DecideError is a decision that failed after its event was applied.
type DecideError struct{ Err error }

func (e *DecideError) Error() string { return "decide an offer: " + e.Err.Error() }
func (e *DecideError) Unwrap() error { return e.Err }

func (s *Store) applyArgs(ev Event, mode string) (args []any, problem string) {
	typ, eid, data, problem := ev.wire()
	return []any{s.prefix, ev.Stream, ev.Seq, typ, ev.ID, string(data), ev.At.UnixMilli(), mode, eid, s.lim.IDWindow}, problem
}

func applyResult(res []string) ApplyResult {
	r := ApplyResult{Status: res[0], Detail: res[1]}
	r.Queues = res[2:]
	return r
}

// stringsOf is a script's array of strings.
func stringsOf(v any) ([]string, error) {
	vs, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("the script returned %T, want an array", v)
	}
	out := make([]string, len(vs))
	for i, x := range vs {
		if out[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("the script returned %T in an array, want strings", x)
		}
	}
	return out, nil
}

// Gone is the version of a queue (root "queue") or agent ("agent") the
// projection does not hold: the sequence of the last event on its
// subjects (its deletion, or a stale event about it), 0 if it never had
// one. Making it again expects that version.
func (s *Store) Gone(ctx context.Context, root, id string) (uint64, error) {
	r := map[string]string{"queue": "q", "agent": "a"}[root]
	if r == "" {
		return 0, fmt.Errorf("tombstone of %s %s: no such kind of aggregate", root, id)
	}
	v, err := s.rdb.HGet(ctx, s.key("gone", r), id).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tombstone of %s %s: %w", root, id, err)
	}
	return v, nil
}

// LastApplied is the last sequence of stream the projection holds.
func (s *Store) LastApplied(ctx context.Context, stream string) (uint64, error) {
	v, err := s.rdb.HGet(ctx, s.key("seq"), stream).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the projection's position in %s: %w", stream, err)
	}
	return v, nil
}

// OfferedAgent is one agent reserved for an offer, with the version its
// events must follow.
type OfferedAgent struct {
	Agent   domain.Agent
	Version uint64
}

// Offer is what Decide reserved.
type Offer struct {
	ID     string
	Queue  string
	Member domain.Member
	Agents []OfferedAgent
}

// Decide picks and reserves the next offer in queue, or returns nil when
// there is none to make. onlyCall adds one agent to that member's running
// offer (ring-progressively).
func (s *Store) Decide(ctx context.Context, queue, owner, offerID, onlyCall string, now time.Time) (*Offer, error) {
	res, err := s.decide.Run(ctx, s.rdb, nil, s.prefix, queue, now.UnixMilli(), owner, offerID, onlyCall,
		s.lim.RingAllMax, s.lim.MemberScan, s.lim.AgentScan).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("decide an offer in queue %s: %w", queue, err)
	}
	return parseOffer(queue, offerID, res)
}

// parseOffer reads decide's result: nil for none.
func parseOffer(queue, offerID string, res []string) (*Offer, error) {
	if len(res) < 2 {
		return nil, nil
	}
	o := &Offer{ID: offerID, Queue: queue}
	if err := json.Unmarshal([]byte(res[1]), &o.Member); err != nil {
		return nil, fmt.Errorf("member %s in redis: %w", res[0], err)
	}
	for i := 2; i+2 < len(res); i += 3 {
		var a domain.Agent
		if err := json.Unmarshal([]byte(res[i+1]), &a); err != nil {
			return nil, fmt.Errorf("agent %s in redis: %w", res[i], err)
		}
		v, _ := strconv.ParseUint(res[i+2], 10, 64)
		o.Agents = append(o.Agents, OfferedAgent{Agent: a, Version: v})
	}
	return o, nil
}

// Release undoes a reservation whose events were not stored: the agents
// named (and the member, if member) go back to where they were.
func (s *Store) Release(ctx context.Context, queue, callID, offerID string, member bool, agents []string, now time.Time) error {
	m := "0"
	if member {
		m = "1"
	}
	args := []any{s.prefix, queue, callID, offerID, now.UnixMilli(), m}
	for _, a := range agents {
		args = append(args, a)
	}
	if err := s.release.Run(ctx, s.rdb, nil, args...).Err(); err != nil {
		return fmt.Errorf("release offer %s of call %s: %w", offerID, callID, err)
	}
	return nil
}

// Wake makes agents whose delay is over offerable again and returns the
// queues to look at, and the agents whose wrap-up is over (the caller
// stores their agent.state.changed(idle)).
func (s *Store) Wake(ctx context.Context, now time.Time) (queues, wrapped []string, err error) {
	res, err := s.wake.Run(ctx, s.rdb, nil, s.prefix, now.UnixMilli()).StringSlice()
	if err != nil {
		return nil, nil, fmt.Errorf("wake agents: %w", err)
	}
	for i, v := range res {
		if v == "|" {
			return res[:i], res[i+1:], nil
		}
	}
	return res, nil, nil
}

// NextWake is when the earliest delayed agent becomes ready or member may
// be offered again (zero: none).
func (s *Store) NextWake(ctx context.Context) (time.Time, error) {
	pipe := s.rdb.Pipeline() // one round trip for both
	firsts := []*redis.ZSliceCmd{pipe.ZRangeWithScores(ctx, s.key("wake"), 0, 0), pipe.ZRangeWithScores(ctx, s.key("mwake"), 0, 0)}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, fmt.Errorf("next wake: %w", err)
	}
	var next time.Time
	for _, c := range firsts {
		if z := c.Val(); len(z) > 0 {
			if t := time.UnixMilli(int64(z[0].Score)); next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	return next, nil
}

// Recount counts queue's agents again, the long way (every agent of the
// queue, in one script), and puts the result in place of the counts the
// events keep when they differ. It returns what differed ("field
// kept->counted"); nothing when the counts were right, as they should
// always be. It does nothing (checked false) while the key lock exists
// or the key mark does not — a projection being rebuilt, whose keys are
// deleted and written again in batches; "" leaves either check out.
func (s *Store) Recount(ctx context.Context, queue, lock, mark string) (diff []string, checked bool, err error) {
	res, err := s.recount.Run(ctx, s.rdb, nil, s.prefix, queue, lock, mark).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("recount the agents of queue %s: %w", queue, err)
	}
	if len(res) == 0 || res[0] != "checked" {
		return nil, false, nil
	}
	return res[1:], true, nil
}

// HistoryKept is how long a queue's finished members count in its stats
// (HIST_KEEP in lua/prelude.lua): the longest stats window.
const HistoryKept = 24 * time.Hour

// QueueStats are one queue's live numbers over a window.
type QueueStats struct {
	Queue              string         `json:"queue"`
	Waiting            int            `json:"waiting"`
	LongestWaitSeconds float64        `json:"longest_wait_seconds"`
	Agents             map[string]int `json:"agents"`
	Answered           int            `json:"answered"`
	Abandoned          int            `json:"abandoned"`
	Exited             int            `json:"exited"`
	ServiceLevelPct    float64        `json:"service_level_pct"`
	ASASeconds         float64        `json:"average_speed_of_answer_seconds"`
	AbandonRatePct     float64        `json:"abandon_rate_pct"`
}

// Stats computes queue's numbers; ok is false when there is no such queue.
func (s *Store) Stats(ctx context.Context, queue string, now time.Time, window time.Duration) (QueueStats, bool, error) {
	raw, err := s.stats.Run(ctx, s.rdb, nil, s.prefix, queue, now.UnixMilli(), window.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return QueueStats{}, false, nil
	}
	if err != nil {
		return QueueStats{}, false, fmt.Errorf("stats of queue %s: %w", queue, err)
	}
	var st QueueStats
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return QueueStats{}, false, fmt.Errorf("stats of queue %s: %w", queue, err)
	}
	return st, true, nil
}

// Checksum digests the projection's state — everything an event wrote,
// not the indexes derived from the clock (idle, wake and mwake sets) nor the
// event ids remembered to refuse copies (large, and a function of the
// sequences applied, which the checksum covers) — so a
// rebuilt projection can be compared with the live one.
func (s *Store) Checksum(ctx context.Context) (string, error) {
	keys, err := s.keys(ctx)
	if err != nil {
		return "", err
	}
	keys = slices.DeleteFunc(keys, func(k string) bool {
		rest := strings.TrimPrefix(k, s.prefix)
		return strings.HasPrefix(rest, "idle:") || rest == "wake" || rest == "mwake" || strings.HasPrefix(rest, "lock:") || strings.HasPrefix(rest, "ids:")
	})
	h := sha256.New()
	// Pipelined a chunk at a time: a projection of 10,000 agents has tens
	// of thousands of keys, and two round trips per key took seconds.
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := s.digest(ctx, h, keys[:n]); err != nil {
			return "", err
		}
		keys = keys[n:]
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// digest writes keys (in order) with their sorted contents to h.
func (s *Store) digest(ctx context.Context, h io.Writer, keys []string) error {
	pipe := s.rdb.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("checksum: read key types: %w", err)
	}
	reads := make([]func() ([]string, error), len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "hash":
			c := pipe.HGetAll(ctx, k)
			reads[i] = func() ([]string, error) {
				var lines []string
				for f, v := range c.Val() {
					lines = append(lines, f+"="+v)
				}
				return lines, c.Err()
			}
		case "zset":
			c := pipe.ZRangeWithScores(ctx, k, 0, -1)
			reads[i] = func() ([]string, error) {
				var lines []string
				for _, e := range c.Val() {
					lines = append(lines, fmt.Sprintf("%v=%v", e.Member, e.Score))
				}
				return lines, c.Err()
			}
		case "set":
			c := pipe.SMembers(ctx, k)
			reads[i] = c.Result
		case "string":
			c := pipe.Get(ctx, k)
			reads[i] = func() ([]string, error) { return []string{c.Val()}, c.Err() }
		default:
			reads[i] = func() ([]string, error) { return nil, nil }
		}
	}
	// A key deleted between the two round trips reads as empty, as it
	// did when it was read key by key.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("checksum: read keys: %w", err)
	}
	for i, k := range keys {
		lines, err := reads[i]()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("checksum %s: %w", k, err)
		}
		sort.Strings(lines)
		fmt.Fprintf(h, "%s %s\n", strings.TrimPrefix(k, s.prefix), types[i].Val())
		for _, l := range lines {
			fmt.Fprintf(h, "  %s\n", l)
		}
	}
	return nil
}

func (s *Store) keys(ctx context.Context) ([]string, error) {
	var keys []string
	iter := s.rdb.Scan(ctx, 0, s.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list projection keys: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

// Reset deletes the whole projection (before a rebuild).
func (s *Store) Reset(ctx context.Context) error {
	keys, err := s.keys(ctx)
	if err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := s.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("reset the projection: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}
