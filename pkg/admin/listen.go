package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Listener is a service's admin HTTP server bound to its address. The
// port is taken when the service is built, so a port in use fails the
// start with a clear error; requests are served once Serve runs.
type Listener struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr for h. Slow clients are bounded by a header timeout
// and an idle timeout here, and per request body by Options.BodyTimeout.
func Listen(addr string, h http.Handler) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for admin HTTP on %s: %w", addr, err)
	}
	return &Listener{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}}, nil
}

// Addr is the address bound (the port chosen when addr asked for :0).
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Serve serves until Shutdown or Close, then returns nil.
func (l *Listener) Serve() error {
	if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown lets requests in flight finish until ctx ends, then closes the
// connections left.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	return err
}

// Close closes the listener and every connection at once.
func (l *Listener) Close() error { return l.srv.Close() }
