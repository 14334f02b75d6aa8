package app

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// flights coalesces identical reads: the first caller starts the upstream
// call, later ones wait for the same answer. Unlike singleflight, the call
// belongs to no one caller: each waiter waits only until its own deadline,
// the call continues while anyone still waits (its retries may use the
// latest waiter's deadline), and it is cancelled when the last waiter
// leaves, so an abandoned read does not hold an upstream connection or a
// bulkhead slot.
type flights struct {
	maxAge time.Duration // a call never outlives this, whoever waits
	mu     sync.Mutex
	m      map[string]*flight
}

type flight struct {
	done     chan struct{}
	res      json.RawMessage
	err      error
	waiters  int
	deadline time.Time // the latest waiter's
	cancel   context.CancelFunc
}

// callFunc is the upstream call; deadline reports the latest deadline of
// those still waiting.
type callFunc func(ctx context.Context, deadline func() time.Time) (json.RawMessage, error)

func newFlights(maxAge time.Duration) *flights {
	return &flights{maxAge: maxAge, m: map[string]*flight{}}
}

// do runs fn for key, or joins the call in progress; joined says which.
// When ctx ends first it returns ctx's error.
func (g *flights) do(ctx context.Context, key string, fn callFunc) (res json.RawMessage, err error, joined bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(g.maxAge)
	}
	g.mu.Lock()
	f, joined := g.m[key]
	if joined {
		f.waiters++
		if dl.After(f.deadline) {
			f.deadline = dl
		}
	} else {
		fctx, cancel := context.WithTimeout(context.Background(), g.maxAge)
		f = &flight{done: make(chan struct{}), waiters: 1, deadline: dl, cancel: cancel}
		g.m[key] = f
		go g.run(fctx, key, f, fn)
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.res, f.err, joined
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody waits: stop the call, and let the next caller start a
			// new one rather than join a cancelled one.
			f.cancel()
			if g.m[key] == f {
				delete(g.m, key)
			}
		}
		g.mu.Unlock()
		return nil, ctx.Err(), joined
	}
}

func (g *flights) run(ctx context.Context, key string, f *flight, fn callFunc) {
	defer f.cancel()
	res, err := fn(ctx, func() time.Time {
		g.mu.Lock()
		defer g.mu.Unlock()
		return f.deadline
	})
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	f.res, f.err = res, err
	g.mu.Unlock()
	close(f.done)
}
