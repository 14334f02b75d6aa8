// Package adminhttp is the queue-distributor's admin REST API
// (docs/api/queue-distributor.yaml): queues, agents, tiers, agent status,
// members waiting and live stats.
package adminhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/admin"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Deps is what the routes use.
type Deps struct {
	D      *distributor.Distributor
	Store  *projection.Store
	Window time.Duration // the stats window
}

// StatsBody is GET /v1/stats.
type StatsBody struct {
	WindowSeconds int                     `json:"window_seconds"`
	At            time.Time               `json:"at"`
	Queues        []projection.QueueStats `json:"queues"`
}

// Stats computes every queue's stats (also the wallboard's source).
func Stats(ctx context.Context, st *projection.Store, window time.Duration) (StatsBody, error) {
	names, err := st.QueueNames(ctx)
	if err != nil {
		return StatsBody{}, err
	}
	at := time.Now().UTC()
	body := StatsBody{WindowSeconds: int(window.Seconds()), At: at, Queues: []projection.QueueStats{}}
	for _, n := range names {
		s, ok, err := st.Stats(ctx, n, at, window)
		if err != nil {
			return StatsBody{}, err
		}
		if ok {
			body.Queues = append(body.Queues, s)
		}
	}
	return body, nil
}

// mapErr turns domain and store errors into API errors.
func mapErr(err error) error {
	var fe *domain.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return admin.Invalid(fe.Field, "%s", fe.Problem)
	case errors.Is(err, projection.ErrNotFound):
		return admin.Errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, distributor.ErrInUse):
		return admin.Errorf(http.StatusConflict, "in_use", "%v", err)
	case errors.Is(err, eventlog.ErrConflict):
		return admin.Errorf(http.StatusConflict, "conflict", "%v; try again", err)
	case errors.Is(err, distributor.ErrRebuilding):
		return admin.Errorf(http.StatusServiceUnavailable, "rebuilding", "%v", err)
	}
	return err
}

// steady holds a request while the projection is rebuilt (a few seconds
// at most), then answers 503 with Retry-After: what the projection shows
// meanwhile is not the state.
func steady(d *distributor.Distributor, h admin.HandlerFunc) admin.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := d.Steady(r.Context())
		if err == nil {
			err = h(w, r)
		}
		if errors.Is(err, distributor.ErrRebuilding) {
			w.Header().Set("Retry-After", "1")
		}
		return mapErr(err)
	}
}

// named decodes the body of a PUT on the resource the path names (path
// value key); a name in the body must be the path's.
func named(r *http.Request, key string, body any, field *string) (string, error) {
	n, err := name(r, key, key)
	if err != nil {
		return "", err
	}
	if err := admin.DecodeJSON(r, body); err != nil {
		return "", err
	}
	if *field != "" && *field != n {
		return "", admin.Invalid(key, "%q does not match the path's %q", *field, n)
	}
	*field = n
	return n, nil
}

// stored answers a change with the resource as the projection now holds
// it: 201 when created, else 200.
func stored(w http.ResponseWriter, created bool, err error, read func() (any, error)) error {
	if err != nil {
		return mapErr(err)
	}
	v, err := read()
	if err != nil {
		return mapErr(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	admin.WriteJSON(w, status, v)
	return nil
}

func name(r *http.Request, key, field string) (string, error) {
	v := r.PathValue(key)
	if err := domain.ValidName(field, v); err != nil {
		return "", mapErr(err)
	}
	return v, nil
}

// ofQueue answers a GET on one of a queue's collections as {key: [...]},
// 404 when there is no such queue.
func ofQueue(st *projection.Store, key string, list func(ctx context.Context, queue string) (any, error)) admin.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := name(r, "name", "name")
		if err != nil {
			return err
		}
		if _, err := st.Queue(r.Context(), n); err != nil {
			return mapErr(err)
		}
		v, err := list(r.Context(), n)
		if err != nil {
			return err
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{key: v})
		return nil
	}
}

// tierPath is the queue and agent a /v1/queues/{name}/tiers/{agent} names.
func tierPath(r *http.Request) (queue, agent string, err error) {
	if queue, err = name(r, "name", "queue"); err != nil {
		return "", "", err
	}
	if agent, err = name(r, "agent", "agent"); err != nil {
		return "", "", err
	}
	return queue, agent, nil
}

// Register adds the routes.
func Register(srv *admin.Server, d Deps) {
	// Every route waits out a rebuild of the projection.
	handle := func(pattern string, h admin.HandlerFunc) { srv.Handle(pattern, steady(d.D, h)) }
	handle("GET /v1/queues", func(w http.ResponseWriter, r *http.Request) error {
		names, err := d.Store.QueueNames(r.Context())
		if err != nil {
			return err
		}
		out := []projection.QueueView{}
		for _, n := range names {
			q, err := d.Store.Queue(r.Context(), n)
			if err == nil {
				out = append(out, q)
			}
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"queues": out})
		return nil
	})
	handle("GET /v1/queues/{name}", getOne("name", func(ctx context.Context, n string) (any, error) { return d.Store.Queue(ctx, n) }))
	handle("PUT /v1/queues/{name}", func(w http.ResponseWriter, r *http.Request) error {
		var q domain.Queue
		n, err := named(r, "name", &q, &q.Name)
		if err != nil {
			return err
		}
		created, err := d.D.PutQueue(r.Context(), q)
		return stored(w, created, err, func() (any, error) { return d.Store.Queue(r.Context(), n) })
	})
	handle("DELETE /v1/queues/{name}", deleteOne("name", d.D.DeleteQueue))
	handle("GET /v1/queues/{name}/tiers", ofQueue(d.Store, "tiers", func(ctx context.Context, q string) (any, error) { return d.Store.Tiers(ctx, q) }))
	handle("PUT /v1/queues/{name}/tiers/{agent}", func(w http.ResponseWriter, r *http.Request) error {
		q, a, err := tierPath(r)
		if err != nil {
			return err
		}
		var t domain.Tier
		if err := admin.DecodeJSON(r, &t); err != nil {
			return err
		}
		t.Queue, t.Agent = q, a
		if err := d.D.SetTier(r.Context(), t); err != nil {
			return mapErr(err)
		}
		admin.WriteJSON(w, http.StatusOK, t)
		return nil
	})
	handle("DELETE /v1/queues/{name}/tiers/{agent}", func(w http.ResponseWriter, r *http.Request) error {
		q, a, err := tierPath(r)
		if err != nil {
			return err
		}
		if err := d.D.RemoveTier(r.Context(), q, a); err != nil {
			return mapErr(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	handle("GET /v1/queues/{name}/members", ofQueue(d.Store, "members", func(ctx context.Context, q string) (any, error) { return d.Store.Members(ctx, q) }))
	handle("GET /v1/queues/{name}/stats", func(w http.ResponseWriter, r *http.Request) error {
		n, err := name(r, "name", "name")
		if err != nil {
			return err
		}
		s, ok, err := d.Store.Stats(r.Context(), n, time.Now(), d.Window)
		if err != nil {
			return err
		}
		if !ok {
			return admin.Errorf(http.StatusNotFound, "not_found", "queue %s: not found", n)
		}
		admin.WriteJSON(w, http.StatusOK, s)
		return nil
	})
	handle("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) error {
		body, err := Stats(r.Context(), d.Store, d.Window)
		if err != nil {
			return err
		}
		admin.WriteJSON(w, http.StatusOK, body)
		return nil
	})

	handle("GET /v1/agents", func(w http.ResponseWriter, r *http.Request) error {
		state := r.URL.Query().Get("state")
		a, err := d.Store.Agents(r.Context(), state)
		if err != nil {
			return err
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"agents": a})
		return nil
	})
	handle("GET /v1/agents/{id}", getOne("id", func(ctx context.Context, id string) (any, error) { return d.Store.Agent(ctx, id) }))
	handle("PUT /v1/agents/{id}", func(w http.ResponseWriter, r *http.Request) error {
		var a domain.Agent
		id, err := named(r, "id", &a, &a.ID)
		if err != nil {
			return err
		}
		created, err := d.D.PutAgent(r.Context(), a)
		return stored(w, created, err, func() (any, error) { return d.Store.Agent(r.Context(), id) })
	})
	handle("DELETE /v1/agents/{id}", deleteOne("id", d.D.DeleteAgent))
	setStatus := func(status string) admin.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			id, err := name(r, "id", "id")
			if err != nil {
				return err
			}
			var body struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
			}
			if status == "" {
				if err := admin.DecodeJSON(r, &body); err != nil {
					return err
				}
			} else {
				body.Status = status
			}
			if len(body.Reason) > 256 {
				return admin.Invalid("reason", "longer than 256 bytes")
			}
			err = d.D.SetStatus(r.Context(), id, body.Status, body.Reason)
			return stored(w, false, err, func() (any, error) { return d.Store.Agent(r.Context(), id) })
		}
	}
	handle("PUT /v1/agents/{id}/status", setStatus(""))
	handle("POST /v1/agents/{id}/login", setStatus(domain.StatusAvailable))
	handle("POST /v1/agents/{id}/logout", setStatus(domain.StatusLoggedOut))
}

// StatsJSON is the wallboard stream's source: GET /v1/stats's body, with
// `at` kept from the snapshot before while the numbers are the same — the
// stream sends only changed bytes, and a fresh time on every poll would
// make every poll a change.
//
// Every stream polls it each second, and a snapshot is a Redis script per
// queue, which holds Redis (and the offers waiting on it) for its length:
// so all streams share it. A snapshot
// younger than fresh is handed out again, and streams asking while one is
// being computed wait for that one: however many wallboards are open,
// Redis computes about one snapshot per fresh.
func StatsJSON(st *projection.Store, window, fresh time.Duration) func(ctx context.Context) ([]byte, error) {
	var mu sync.Mutex
	var lastQueues, last []byte
	var lastAt, madeAt time.Time
	var running chan struct{} // closed when the snapshot being made is ready
	var runErr error
	snapshot := func(ctx context.Context) ([]byte, error) {
		b, err := Stats(ctx, st, window)
		if err != nil {
			return nil, err
		}
		queues, err := json.Marshal(b.Queues)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		if bytes.Equal(queues, lastQueues) {
			b.At = lastAt
		} else {
			lastQueues, lastAt = queues, b.At
		}
		mu.Unlock()
		return json.Marshal(b)
	}
	return func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		if last != nil && time.Since(madeAt) < fresh {
			b := last
			mu.Unlock()
			return b, nil
		}
		if running != nil {
			wait := running
			mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			mu.Lock()
			b, err := last, runErr
			mu.Unlock()
			return b, err
		}
		done := make(chan struct{})
		running = done
		mu.Unlock()
		var b []byte
		err := errors.New("stats snapshot failed")
		defer func() {
			// Also when snapshot panics (the admin server recovers the
			// handler): the streams waiting on it must not wait for ever.
			mu.Lock()
			running, runErr = nil, err
			if err == nil {
				last, madeAt = b, time.Now()
			} else {
				last = nil
			}
			mu.Unlock()
			close(done)
		}()
		// Not the asking stream's context: the others wait for this
		// snapshot too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		b, err = snapshot(cctx)
		return b, err
	}
}

// getOne answers GET of one queue or agent named by the path's param.
func getOne(param string, read func(ctx context.Context, id string) (any, error)) admin.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := name(r, param, param)
		if err != nil {
			return err
		}
		v, err := read(r.Context(), id)
		if err != nil {
			return mapErr(err)
		}
		admin.WriteJSON(w, http.StatusOK, v)
		return nil
	}
}

// deleteOne answers DELETE of one queue or agent named by the path's param.
func deleteOne(param string, del func(ctx context.Context, id string) error) admin.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := name(r, param, param)
		if err != nil {
			return err
		}
		if err := del(r.Context(), id); err != nil {
			return mapErr(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
