package wallboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	snapA = `{"window_seconds":900,"at":"2026-11-23T10:00:00.123456789Z","queues":[{"queue":"support","waiting":3,"longest_wait_seconds":42.1,"agents":{"logged_out":1,"available":5,"on_break":2,"idle":3,"offered":1,"in_call":1,"wrap_up":0},"offered":40,"answered":30,"abandoned":2,"service_level_pct":87.5,"average_speed_of_answer_seconds":12.3,"abandon_rate_pct":6.25}]}`
	snapB = `{"window_seconds":900,"at":"2026-11-23T10:00:01Z","queues":[{"queue":"support","waiting":4}]}`
)

// reply is one answer of a scripted source.
type reply struct {
	body string
	err  error
}

// script is a stats source that answers its replies in order and then
// repeats the last one, counting its calls.
type script struct {
	mu      sync.Mutex
	replies []reply
	calls   int
}

func (s *script) src(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.replies[min(s.calls, len(s.replies)-1)]
	s.calls++
	if r.err != nil {
		return nil, r.err
	}
	return []byte(r.body), nil
}

// event is one server-sent event, or a comment (type ":").
type event struct {
	typ, data string
}

func TestStream(t *testing.T) {
	pretty, _ := json.MarshalIndent(json.RawMessage(snapB), "", "  ")
	huge := `{"queues":[],"pad":"` + strings.Repeat("x", MaxSnapshotBytes) + `"}`
	boom := errors.New("redis: connection refused")

	tests := []struct {
		name      string
		replies   []reply
		every     time.Duration
		keepAlive time.Duration
		want      []event
	}{
		{
			name:    "first snapshot at once, before any poll",
			replies: []reply{{body: snapA}},
			every:   time.Hour,
			want:    []event{{"stats", snapA}},
		},
		{
			name:    "a changed snapshot is pushed",
			replies: []reply{{body: snapA}, {body: snapB}},
			want:    []event{{"stats", snapA}, {"stats", snapB}},
		},
		{
			// Were an unchanged snapshot sent again, the second event would
			// be A, not B.
			name:    "an unchanged snapshot is not sent again",
			replies: []reply{{body: snapA}, {body: snapA}, {body: snapA}, {body: snapA}, {body: snapA}, {body: snapB}},
			want:    []event{{"stats", snapA}, {"stats", snapB}},
		},
		{
			name:    "a source error is an error event and the stream goes on",
			replies: []reply{{body: snapA}, {err: boom}, {body: snapB}},
			want: []event{
				{"stats", snapA},
				{"error", `{"error":{"code":"stats_unavailable","message":"reading stats: redis: connection refused"}}`},
				{"stats", snapB},
			},
		},
		{
			name:    "after an error the same snapshot is sent again",
			replies: []reply{{body: snapA}, {err: boom}, {body: snapA}},
			want: []event{
				{"stats", snapA},
				{"error", `{"error":{"code":"stats_unavailable","message":"reading stats: redis: connection refused"}}`},
				{"stats", snapA},
			},
		},
		{
			name:    "an oversize snapshot is refused",
			replies: []reply{{body: huge}, {body: snapA}},
			want: []event{
				{"error", fmt.Sprintf(`{"error":{"code":"stats_too_large","message":"the stats snapshot is %d bytes, over the stream's limit of 1048576"}}`, len(huge))},
				{"stats", snapA},
			},
		},
		{
			name:    "multi-line JSON is sent on one line",
			replies: []reply{{body: string(pretty)}},
			want:    []event{{"stats", snapB}},
		},
		{
			name:    "invalid JSON is an error event",
			replies: []reply{{body: "{\"queues\":\n[\nnot json"}, {body: snapA}},
			want: []event{
				{"error", `{"error":{"code":"stats_unavailable","message":"the stats snapshot is not valid JSON: invalid character 'o' in literal null (expecting 'u')"}}`},
				{"stats", snapA},
			},
		},
		{
			name:      "a keep-alive comment while nothing changes",
			replies:   []reply{{body: snapA}},
			every:     time.Hour,
			keepAlive: 20 * time.Millisecond,
			want:      []event{{"stats", snapA}, {":", " keep-alive"}, {":", " keep-alive"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.every == 0 {
				tt.every = 5 * time.Millisecond
			}
			if tt.keepAlive == 0 {
				tt.keepAlive = time.Hour
			}
			src := &script{replies: tt.replies}
			ts, done := serve(t, stream(src.src, tt.every, tt.keepAlive))

			resp := get(t, ts.URL)
			if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
				t.Errorf("Content-Type = %q, want text/event-stream", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			events := readEvents(t, resp)
			for i, want := range tt.want {
				got, err := next(events, 5*time.Second)
				if err != nil {
					t.Fatalf("event %d: %v; want %+v", i, err, want)
				}
				if got != want {
					t.Fatalf("event %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
			resp.Body.Close()
			waitDone(t, done)
		})
	}
}

func TestStreamEndsWhenClientLeaves(t *testing.T) {
	src := &script{replies: []reply{{body: snapA}}}
	ts, done := serve(t, stream(src.src, 5*time.Millisecond, time.Hour))
	resp := get(t, ts.URL)
	if _, err := next(readEvents(t, resp), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitDone(t, done) // the handler returned: no goroutine is left polling
}

func TestStreamEndsWithTheServerContext(t *testing.T) {
	src := &script{replies: []reply{{body: snapA}}}
	ctx, cancel := context.WithCancel(context.Background())
	h := stream(src.src, time.Hour, time.Hour)
	done := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done <- h(w, r.WithContext(ctx))
	}))
	t.Cleanup(ts.Close)
	resp := get(t, ts.URL)
	defer resp.Body.Close()
	if _, err := next(readEvents(t, resp), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("handler returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return after its context ended")
	}
}

// serve starts a real HTTP server for h; done receives h's result.
func serve(t *testing.T, h func(http.ResponseWriter, *http.Request) error) (*httptest.Server, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done <- h(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, done
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
	return resp
}

func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("handler returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return after the client went away")
	}
}

// readEvents parses the stream as a browser would, into a channel that
// closes when the body ends. Every data line must be one line of JSON.
func readEvents(t *testing.T, resp *http.Response) <-chan event {
	t.Helper()
	out := make(chan event, 16)
	stop := t.Context().Done()
	send := func(ev event) bool {
		select {
		case out <- ev:
			return true
		case <-stop:
			return false
		}
	}
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 2*MaxSnapshotBytes)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" && !send(ev) {
					return
				}
				ev = event{}
			case strings.HasPrefix(line, ":"):
				if !send(event{":", line[1:]}) {
					return
				}
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if ev.data != "" {
					ev.data += "\n" // a second data line: the test fails on it
				}
				ev.data += line[len("data: "):]
			default:
				ev.data += "\x00unexpected line: " + line
			}
		}
	}()
	return out
}

func next(events <-chan event, within time.Duration) (event, error) {
	select {
	case ev, ok := <-events:
		if !ok {
			return event{}, errors.New("the stream ended")
		}
		return ev, nil
	case <-time.After(within):
		return event{}, errors.New("no event in time")
	}
}
