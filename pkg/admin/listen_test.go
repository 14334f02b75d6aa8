package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that stops half-way through a body costs it one 408, not a
// connection and a goroutine held for ever; a long response (no body
// sent) is not cut by that deadline.
func TestListenerBoundsSlowBodiesNotLongResponses(t *testing.T) {
	s := New(Options{Token: "t0k", BodyTimeout: 200 * time.Millisecond})
	s.Handle("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Name string `json:"name"`
		}
		if err := DecodeJSON(r, &in); err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, in)
		return nil
	})
	s.Handle("GET /v1/stream", func(w http.ResponseWriter, r *http.Request) error {
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(500 * time.Millisecond): // longer than BodyTimeout
		}
		WriteJSON(w, http.StatusOK, map[string]string{"done": "yes"})
		return nil
	})
	l, err := Listen("127.0.0.1:0", s.Handler())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()

	conn, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\nContent-Length: 100\r\n\r\n{\"na")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body[:n]), "body_timeout") {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, body[:n])
	}

	req, _ := http.NewRequest("GET", "http://"+l.Addr()+"/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer t0k")
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	long, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if got.StatusCode != http.StatusOK || !strings.Contains(string(long), `"done":"yes"`) {
		t.Fatalf("long response cut: %d %s", got.StatusCode, long)
	}

	if _, err := Listen(l.Addr(), s.Handler()); err == nil || !strings.Contains(err.Error(), "listen for admin HTTP on "+l.Addr()) {
		t.Fatalf("a taken port: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
