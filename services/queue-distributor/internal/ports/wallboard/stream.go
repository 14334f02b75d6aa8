package wallboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/admin"
)

const (
	// MaxSnapshotBytes bounds one stats snapshot; a larger one is refused
	// with an error event, so one runaway queue list cannot make every open
	// wallboard download megabytes each poll.
	MaxSnapshotBytes = 1 << 20

	// keepAliveEvery is how often a comment line goes out, so proxies and
	// load balancers with idle timeouts keep the stream open and the page can
	// tell a silent server from a dead one.
	keepAliveEvery = 15 * time.Second

	// writeTimeout bounds one write: a client that stops reading (a sleeping
	// TV, a stalled proxy) ends its stream instead of holding a goroutine
	// forever. It also lifts the server's WriteTimeout, which would otherwise
	// cut every long-lived stream.
	writeTimeout = 10 * time.Second
)

// Stream is the handler for GET /v1/stats/stream: server-sent events of the
// stats snapshot that src returns (the body of GET /v1/stats, opaque JSON).
//
// It sends "event: stats" with the snapshot at once, then polls src every
// `every` (one second if every is not positive) and sends it again only when
// its bytes changed; a ": keep-alive" comment goes out every 15 s. A src
// error, an invalid snapshot or one over MaxSnapshotBytes becomes an "event:
// error" in the API error shape and the stream goes on. It returns when the
// client goes away or the request's context ends.
func Stream(src func(ctx context.Context) ([]byte, error), every time.Duration) admin.HandlerFunc {
	return stream(src, every, keepAliveEvery)
}

func stream(src func(ctx context.Context) ([]byte, error), every, keepAlive time.Duration) admin.HandlerFunc {
	if every <= 0 {
		every = time.Second
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		s := &sseWriter{w: w, rc: http.NewResponseController(w)}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)

		poll := time.NewTicker(every)
		defer poll.Stop()
		alive := time.NewTicker(keepAlive)
		defer alive.Stop()

		var last []byte // the snapshot the client has; nil after an error event
		ev := pollOnce(ctx, src, &last)
		for {
			if err := s.send(ev); err != nil {
				return streamEnd(err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-poll.C:
				ev = pollOnce(ctx, src, &last)
			case <-alive.C:
				ev = []byte(": keep-alive\n\n")
			}
		}
	}
}

// pollOnce reads one snapshot and returns the event to send, or nil when
// the client already has these bytes. last is updated to what the client
// will have.
func pollOnce(ctx context.Context, src func(ctx context.Context) ([]byte, error), last *[]byte) []byte {
	snap, err := snapshot(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client left mid-read; nothing to tell it
		}
		// After an error the client shows stale data, so the next good
		// snapshot goes out even if it equals the one before the error.
		*last = nil
		return errorEvent(err)
	}
	if *last != nil && bytes.Equal(snap, *last) {
		return nil
	}
	*last = snap
	ev := make([]byte, 0, len(snap)+len("event: stats\ndata: \n\n"))
	ev = append(ev, "event: stats\ndata: "...)
	ev = append(ev, snap...)
	return append(ev, "\n\n"...)
}

// snapshot returns src's JSON as one line, or why it cannot be sent.
func snapshot(ctx context.Context, src func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	raw, err := src(ctx)
	if err != nil {
		return nil, &admin.Error{Status: http.StatusServiceUnavailable, Code: "stats_unavailable", Message: "reading stats: " + err.Error()}
	}
	if len(raw) > MaxSnapshotBytes {
		return nil, admin.Errorf(http.StatusServiceUnavailable, "stats_too_large",
			"the stats snapshot is %d bytes, over the stream's limit of %d", len(raw), MaxSnapshotBytes)
	}
	// Compacting both validates the JSON and removes the newlines that
	// would end an SSE data line early (JSON strings cannot hold raw ones).
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, admin.Errorf(http.StatusServiceUnavailable, "stats_unavailable", "the stats snapshot is not valid JSON: %v", err)
	}
	return buf.Bytes(), nil
}

func errorEvent(err error) []byte {
	var ae *admin.Error
	if !errors.As(err, &ae) {
		ae = admin.Errorf(http.StatusServiceUnavailable, "stats_unavailable", "%v", err)
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
	return fmt.Appendf(nil, "event: error\ndata: %s\n\n", body)
}

// sseWriter writes whole events and flushes each one, each write bounded
// by writeTimeout.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseWriter) send(ev []byte) error {
	if ev == nil {
		return nil
	}
	if err := s.rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.w.Write(ev); err != nil {
		return err
	}
	return s.rc.Flush()
}

// streamEnd turns a failed write into the handler's result: a client that
// went away is the normal end of a stream, while a ResponseWriter that
// cannot flush is a wiring bug worth an error in the log.
func streamEnd(err error) error {
	if errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("stats stream: the response cannot be flushed: %w", err)
	}
	return nil
}
