package policystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// RoutesBucket holds the route table: one key, the whole table, so every
// change is one atomic revision that all runners see whole.
const (
	RoutesBucket = "switchyard_routes"
	routesKey    = "table"
)

// ErrConflict: the table changed since the revision the caller read.
var ErrConflict = errors.New("the route table changed meanwhile; read it again")

// RouteTable is the stored table.
type RouteTable struct {
	Routes   []app.Route `json:"routes"`
	Revision uint64      `json:"revision"`
}

// Routes keeps the route table in KV and tells apply about every version.
type Routes struct {
	kv    jetstream.KeyValue
	apply func([]app.Route) error

	mu      sync.RWMutex
	current RouteTable
}

// OpenRoutes opens the bucket, stores seed when the bucket has no table
// yet (the first start with --routes), and follows the table: apply gets
// every version, the first before OpenRoutes returns. A stored table apply
// refuses is logged by the caller and the previous one stays.
func OpenRoutes(ctx context.Context, js jetstream.JetStream, seed []app.Route, apply func([]app.Route) error, onBad func(error)) (*Routes, func(), error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: RoutesBucket, History: 16, Description: "Switchyard route table: destination → policy"})
	if err != nil {
		return nil, nil, fmt.Errorf("route bucket: %w", err)
	}
	if seed == nil {
		seed = []app.Route{}
	}
	b, _ := json.Marshal(RouteTable{Routes: seed})
	if _, err := kv.Create(ctx, routesKey, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil, fmt.Errorf("seed the route table: %w", err)
	}
	r := &Routes{kv: kv, apply: apply}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.Watch(wctx, routesKey)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("watch the route table: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		once := sync.Once{}
		defer once.Do(func() { close(ready) })
		for e := range w.Updates() {
			if e == nil {
				once.Do(func() { close(ready) })
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var t RouteTable
			if err := json.Unmarshal(e.Value(), &t); err != nil {
				onBad(fmt.Errorf("route table revision %d is not JSON: %w", e.Revision(), err))
				continue
			}
			if err := apply(t.Routes); err != nil {
				onBad(fmt.Errorf("route table revision %d refused: %w", e.Revision(), err))
				continue
			}
			t.Revision = e.Revision()
			r.mu.Lock()
			r.current = t
			r.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		w.Stop()
		cancel()
		return nil, nil, ctx.Err()
	}
	return r, func() { w.Stop(); cancel() }, nil
}

// Table is the table in force.
func (r *Routes) Table() RouteTable {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := r.current
	t.Routes = append([]app.Route{}, t.Routes...)
	return t
}

// Update reads the stored table, lets change edit it, validates the result
// and stores it if nobody wrote meanwhile. ifRevision, when not zero, is
// the revision the caller based its edit on: a different stored revision
// is ErrConflict.
func (r *Routes) Update(ctx context.Context, ifRevision uint64, validate func([]app.Route) error, change func([]app.Route) ([]app.Route, error)) (RouteTable, error) {
	for range 5 {
		e, err := r.kv.Get(ctx, routesKey)
		if err != nil {
			return RouteTable{}, fmt.Errorf("read the route table: %w", err)
		}
		if ifRevision != 0 && e.Revision() != ifRevision {
			return RouteTable{}, fmt.Errorf("%w (stored revision %d, yours %d)", ErrConflict, e.Revision(), ifRevision)
		}
		var t RouteTable
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			t.Routes = nil // a broken stored table is replaced
		}
		routes, err := change(append([]app.Route{}, t.Routes...))
		if err != nil {
			return RouteTable{}, err
		}
		if err := validate(routes); err != nil {
			return RouteTable{}, err
		}
		b, _ := json.Marshal(RouteTable{Routes: routes})
		rev, err := r.kv.Update(ctx, routesKey, b, e.Revision())
		if err == nil {
			return RouteTable{Routes: routes, Revision: rev}, nil
		}
		if ifRevision != 0 {
			return RouteTable{}, fmt.Errorf("%w: %v", ErrConflict, err)
		}
	}
	return RouteTable{}, fmt.Errorf("%w: five attempts collided", ErrConflict)
}
