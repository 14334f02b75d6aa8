// Package recording keeps what a policy run took in from outside — call
// control answers (digits pressed, bridge results, whether the caller is
// still there), queue outcomes, tenant state, schedule answers, node api
// output and every clock reading — in the order the script consumed them,
// so that the run can be played again exactly: `policy-runner replay`.
// The script itself is deterministic given these inputs (the sandbox has no
// other source of time or randomness: math.random is seeded the same in
// every state), so the same inputs retrace the same path.
package recording

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// Tape is a run's inputs in order.
type Tape struct {
	Entries []Entry `json:"entries"`
	// Truncated: the run took in more than the recorder keeps; a replay
	// stops where the tape ends.
	Truncated bool `json:"truncated,omitempty"`
}

// Entry is one input: what the policy asked (Op, Arg) and what it got.
type Entry struct {
	Op  string          `json:"op"`
	Arg string          `json:"arg,omitempty"`
	Out json.RawMessage `json:"out,omitempty"`
	Err string          `json:"err,omitempty"`
	// N repeats an identical answer (ready() polled in a loop).
	N int `json:"n,omitempty"`
}

// Operations on the tape.
const (
	OpExecute  = "execute"
	OpHangup   = "hangup"
	OpSet      = "set"
	OpGet      = "get"
	OpTransfer = "transfer"
	OpReady    = "ready"
	OpClock    = "clock"
	OpQueue    = "queue.enqueue"
	OpKVGet    = "kv.get"
	OpKVSet    = "kv.set"
	OpKVDelete = "kv.delete"
	OpSchedule = "schedule.is_open"
	OpAPI      = "api"
	OpPush     = "push.notify"
	OpConnect  = "connector.query"
)

// DefaultMaxBytes bounds a tape's encoded size, which travels in the
// policy.completed event.
const DefaultMaxBytes = 128 << 10

// Recorder records one run.
type Recorder struct {
	mu       sync.Mutex
	tape     Tape
	size     int
	maxBytes int
}

// NewRecorder records up to maxBytes of entries (0: DefaultMaxBytes).
func NewRecorder(maxBytes int) *Recorder {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Recorder{maxBytes: maxBytes}
}

// Tape is what has been recorded so far.
func (r *Recorder) Tape() Tape {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tape
	t.Entries = append([]Entry(nil), r.tape.Entries...)
	return t
}

func (r *Recorder) add(op, arg string, out any, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tape.Truncated {
		return
	}
	e := Entry{Op: op, Arg: arg}
	if out != nil {
		b, _ := json.Marshal(out)
		e.Out = b
	}
	if err != nil {
		e.Err = err.Error()
	}
	if n := len(r.tape.Entries); n > 0 && op == OpReady {
		last := &r.tape.Entries[n-1]
		if last.Op == OpReady && string(last.Out) == string(e.Out) {
			last.N = max(last.N, 1) + 1
			return
		}
	}
	size := len(e.Op) + len(e.Arg) + len(e.Out) + len(e.Err) + 32
	if r.size+size > r.maxBytes {
		r.tape.Truncated = true
		return
	}
	r.size += size
	r.tape.Entries = append(r.tape.Entries, e)
}

// Env wraps env's inputs so each is recorded as it is consumed.
func (r *Recorder) Env(env luaapi.Env) luaapi.Env {
	env.Ctl = &recordedCall{r: r, ctl: env.Ctl}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	env.Now = func() time.Time {
		t := now()
		r.add(OpClock, "", t.UnixNano(), nil)
		return t
	}
	if env.Queue != nil {
		env.Queue = recordedQueue{r, env.Queue}
	}
	if env.KV != nil {
		env.KV = recordedKV{r, env.KV}
	}
	if env.Schedules != nil {
		env.Schedules = recordedSchedules{r, env.Schedules}
	}
	if env.API != nil {
		env.API = recordedAPI{r, env.API}
	}
	if env.Push != nil {
		env.Push = recordedPush{r, env.Push}
	}
	if env.Connector != nil {
		env.Connector = recordedConnector{r, env.Connector}
	}
	return env
}

type recordedCall struct {
	r   *Recorder
	ctl luaapi.CallControl
}

func (c *recordedCall) Execute(ctx context.Context, app, arg string, vars []string) (luaapi.Result, error) {
	res, err := c.ctl.Execute(ctx, app, arg, vars)
	c.r.add(OpExecute, app+" "+arg, res, err)
	return res, err
}

func (c *recordedCall) Hangup(ctx context.Context, cause string) error {
	err := c.ctl.Hangup(ctx, cause)
	c.r.add(OpHangup, cause, nil, err)
	return err
}

func (c *recordedCall) Set(ctx context.Context, name, value string) error {
	err := c.ctl.Set(ctx, name, value)
	c.r.add(OpSet, name+"="+value, nil, err)
	return err
}

type gotVar struct {
	Value string `json:"value"`
	OK    bool   `json:"ok"`
}

func (c *recordedCall) Get(ctx context.Context, name string) (string, bool, error) {
	v, ok, err := c.ctl.Get(ctx, name)
	c.r.add(OpGet, name, gotVar{v, ok}, err)
	return v, ok, err
}

func (c *recordedCall) Transfer(ctx context.Context, dest, dialplan, context string) error {
	err := c.ctl.Transfer(ctx, dest, dialplan, context)
	c.r.add(OpTransfer, dest+" "+dialplan+" "+context, nil, err)
	return err
}

func (c *recordedCall) Ready() bool {
	ok := c.ctl.Ready()
	c.r.add(OpReady, "", ok, nil)
	return ok
}

type recordedQueue struct {
	r *Recorder
	q luaapi.Queue
}

func (q recordedQueue) Enqueue(ctx context.Context, call luaapi.Call, req luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	res, err := q.q.Enqueue(ctx, call, req)
	q.r.add(OpQueue, req.Queue, res, err)
	return res, err
}

type recordedKV struct {
	r  *Recorder
	kv luaapi.KV
}

func (k recordedKV) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := k.kv.Get(ctx, key)
	k.r.add(OpKVGet, key, gotVar{v, ok}, err)
	return v, ok, err
}

func (k recordedKV) Set(ctx context.Context, key, value string) error {
	err := k.kv.Set(ctx, key, value)
	k.r.add(OpKVSet, key, nil, err)
	return err
}

func (k recordedKV) Delete(ctx context.Context, key string) error {
	err := k.kv.Delete(ctx, key)
	k.r.add(OpKVDelete, key, nil, err)
	return err
}

type recordedSchedules struct {
	r *Recorder
	s luaapi.Schedules
}

func (s recordedSchedules) IsOpen(name string, t time.Time) (bool, error) {
	open, err := s.s.IsOpen(name, t)
	s.r.add(OpSchedule, name, open, err)
	return open, err
}

type recordedAPI struct {
	r   *Recorder
	api luaapi.NodeAPI
}

func (a recordedAPI) API(ctx context.Context, cmd string) (string, error) {
	out, err := a.api.API(ctx, cmd)
	a.r.add(OpAPI, cmd, out, err)
	return out, err
}

type recordedPush struct {
	r *Recorder
	p luaapi.Push
}

func (p recordedPush) Notify(ctx context.Context, call luaapi.Call, req luaapi.PushRequest) (string, error) {
	id, err := p.p.Notify(ctx, call, req)
	p.r.add(OpPush, req.User+" "+req.Type, id, err)
	return id, err
}

// ErrDiverged: the replayed policy asked for something other than what
// the recorded run asked for at that point (a different version of the
// script, or one that depends on something not recorded).
var ErrDiverged = errors.New("the replay left the recorded path")

// Replayer answers a run's inputs from a tape.
type Replayer struct {
	mu       sync.Mutex
	tape     Tape
	pos      int
	repeat   int // answers given from the current entry's N
	diverged error
	ready    bool
}

// NewReplayer plays tape back.
func NewReplayer(tape Tape) *Replayer { return &Replayer{tape: tape, ready: true} }

// Diverged is the first divergence, or nil when the replay followed the
// tape.
func (p *Replayer) Diverged() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.diverged
}

// Unused is how many recorded inputs the replay did not consume.
func (p *Replayer) Unused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tape.Entries) - p.pos
}

// next returns the entry for op/arg, or an error that also marks the
// divergence.
func (p *Replayer) next(op, arg string, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.diverged != nil {
		return p.diverged
	}
	if p.pos >= len(p.tape.Entries) {
		why := "the recorded run took no more inputs"
		if p.tape.Truncated {
			why = "the recording was truncated here"
		}
		p.diverged = fmt.Errorf("%w at input %d: the policy asks %s %q; %s", ErrDiverged, p.pos+1, op, arg, why)
		return p.diverged
	}
	e := p.tape.Entries[p.pos]
	if e.Op != op || (e.Arg != arg && op != OpClock) {
		p.diverged = fmt.Errorf("%w at input %d: the recorded run asked %s %q, the policy now asks %s %q", ErrDiverged, p.pos+1, e.Op, e.Arg, op, arg)
		return p.diverged
	}
	p.repeat++
	if p.repeat >= max(e.N, 1) {
		p.pos++
		p.repeat = 0
	}
	if out != nil && len(e.Out) > 0 {
		if err := json.Unmarshal(e.Out, out); err != nil {
			p.diverged = fmt.Errorf("input %d (%s): unreadable recording: %w", p.pos, op, err)
			return p.diverged
		}
	}
	if e.Err != "" {
		return errors.New(e.Err)
	}
	return nil
}

// Env replaces env's inputs with the tape's.
func (p *Replayer) Env(env luaapi.Env) luaapi.Env {
	env.Ctl = replayCall{p}
	env.Now = func() time.Time {
		var ns int64
		if err := p.next(OpClock, "", &ns); err != nil {
			return time.Unix(0, 0)
		}
		return time.Unix(0, ns)
	}
	env.Queue = replayQueue{p}
	env.KV = replayKV{p}
	env.Schedules = replaySchedules{p}
	env.API = replayAPI{p}
	env.Push = replayPush{p}
	env.Connector = replayConnector{p}
	return env
}

type replayCall struct{ p *Replayer }

func (c replayCall) Execute(_ context.Context, app, arg string, _ []string) (luaapi.Result, error) {
	var r luaapi.Result
	err := c.p.next(OpExecute, app+" "+arg, &r)
	return r, err
}

func (c replayCall) Hangup(_ context.Context, cause string) error {
	return c.p.next(OpHangup, cause, nil)
}

func (c replayCall) Set(_ context.Context, name, value string) error {
	return c.p.next(OpSet, name+"="+value, nil)
}

func (c replayCall) Get(_ context.Context, name string) (string, bool, error) {
	var g gotVar
	err := c.p.next(OpGet, name, &g)
	return g.Value, g.OK, err
}

func (c replayCall) Transfer(_ context.Context, dest, dialplan, context string) error {
	return c.p.next(OpTransfer, dest+" "+dialplan+" "+context, nil)
}

func (c replayCall) Ready() bool {
	ok := false
	if err := c.p.next(OpReady, "", &ok); err != nil {
		return false
	}
	return ok
}

type replayQueue struct{ p *Replayer }

func (q replayQueue) Enqueue(_ context.Context, _ luaapi.Call, req luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	var r luaapi.EnqueueResult
	err := q.p.next(OpQueue, req.Queue, &r)
	return r, err
}

type replayKV struct{ p *Replayer }

func (k replayKV) Get(_ context.Context, key string) (string, bool, error) {
	var g gotVar
	err := k.p.next(OpKVGet, key, &g)
	return g.Value, g.OK, err
}

func (k replayKV) Set(_ context.Context, key, _ string) error { return k.p.next(OpKVSet, key, nil) }

func (k replayKV) Delete(_ context.Context, key string) error { return k.p.next(OpKVDelete, key, nil) }

type replaySchedules struct{ p *Replayer }

func (s replaySchedules) IsOpen(name string, _ time.Time) (bool, error) {
	open := false
	err := s.p.next(OpSchedule, name, &open)
	return open, err
}

type replayAPI struct{ p *Replayer }

func (a replayAPI) API(_ context.Context, cmd string) (string, error) {
	var out string
	err := a.p.next(OpAPI, cmd, &out)
	return out, err
}

// replayPush answers from the tape: a replay never pushes again.
type replayPush struct{ p *Replayer }

func (r replayPush) Notify(_ context.Context, _ luaapi.Call, req luaapi.PushRequest) (string, error) {
	var id string
	err := r.p.next(OpPush, req.User+" "+req.Type, &id)
	return id, err
}

type recordedConnector struct {
	r *Recorder
	c luaapi.Connector
}

func (c recordedConnector) Query(ctx context.Context, call luaapi.Call, q luaapi.ConnectorQuery) (any, error) {
	res, err := c.c.Query(ctx, call, q)
	c.r.add(OpConnect, q.Connector+" "+q.Op+" "+q.Query, res, err)
	return res, err
}

// replayConnector answers from the tape: a replay never asks the CRM.
type replayConnector struct{ p *Replayer }

func (c replayConnector) Query(_ context.Context, _ luaapi.Call, q luaapi.ConnectorQuery) (any, error) {
	var res any
	err := c.p.next(OpConnect, q.Connector+" "+q.Op+" "+q.Query, &res)
	return res, err
}
