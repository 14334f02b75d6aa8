// Command wallboard-dev serves the wallboard page and its stats stream from a
// JSON file, behind the real admin server, with no NATS or Redis: for working
// on the page in a browser, and for the e2e test that drives it in headless
// Chromium (the wallboard package is internal to the queue-distributor, so
// that test cannot import it and runs this instead).
//
//	go run ./services/queue-distributor/cmd/wallboard-dev --token t0k --snapshot stats.json
//	open http://127.0.0.1:8089/wallboard#token=t0k
//
// The file is read at every poll, so editing it updates open wallboards; a
// missing or bad file shows as an error on the page. The first line on
// stdout is "listening on http://ADDR".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/admin"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/wallboard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "wallboard-dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("wallboard-dev", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address (port 0 picks a free one)")
	token := fs.String("token", "", "admin bearer token the stream requires (required)")
	snapshot := fs.String("snapshot", "", "file holding the GET /v1/stats JSON, read at every poll (required)")
	every := fs.Duration("every", time.Second, "how often the stream polls the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" || *snapshot == "" {
		fs.Usage()
		return errors.New("--token and --snapshot are required")
	}

	adm := admin.New(admin.Options{Token: *token})
	adm.Handle("GET /v1/stats/stream", wallboard.Stream(func(context.Context) ([]byte, error) {
		return os.ReadFile(*snapshot)
	}, *every))
	mux := http.NewServeMux()
	mux.Handle("GET /wallboard", wallboard.Page())
	mux.Handle("/", adm.Handler())

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Streams end only when their request context does: cancelling the base
	// context at shutdown lets Shutdown find idle connections at once.
	base, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	endStreams()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
