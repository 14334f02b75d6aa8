package testinfra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsBuildHint is how the pinned server is built; make setup runs it.
const natsBuildHint = "cd pkg && go build -o ../bin/nats-server github.com/nats-io/nats-server/v2"

// NATS is a real nats-server with JetStream and a file store.
type NATS struct{ s *server }

// natsBinary finds the server built from the version pinned in pkg/go.mod.
// A nats-server on PATH is not considered: Debian's is too old for the
// jetstream API of the nats.go we use.
func natsBinary() (string, error) {
	if p := os.Getenv("SWITCHYARD_NATS_SERVER"); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("nats-server not found at %s (from SWITCHYARD_NATS_SERVER: %v): point SWITCHYARD_NATS_SERVER at a nats-server binary, or unset it and run \"make setup\" (it builds the pinned server with: %s)", p, err, natsBuildHint)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("nats-server not found: cannot locate the repository's bin/nats-server (%v): run the tests inside the Switchyard repository after \"make setup\" (it builds the pinned server with: %s), or set SWITCHYARD_NATS_SERVER to a nats-server binary", err, natsBuildHint)
	}
	p := filepath.Join(root, "bin", "nats-server")
	if err := executable(p); err != nil {
		return "", fmt.Errorf("nats-server not found at %s: run \"make setup\" (it builds the pinned server with: %s)", p, natsBuildHint)
	}
	return p, nil
}

// StartNATS starts a JetStream-enabled nats-server on a free loopback port,
// with its store in a new temporary directory, and returns once JetStream
// answers. ctx bounds the wait, not the server's life; Close stops it.
func StartNATS(ctx context.Context) (*NATS, error) {
	bin, err := natsBinary()
	if err != nil {
		return nil, err
	}
	s := &server{name: "nats-server", bin: bin}
	// The name, unique to this server and kept across restarts, is how
	// readiness knows it reached this server and not another on the port.
	name := func() string { return "testinfra-" + filepath.Base(s.dir) }
	s.args = func(port int) []string {
		return []string{"-js", "-sd", s.dir, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-n", name()}
	}
	s.ready = func(ctx context.Context, addr string, _ int) error { return natsReady(ctx, addr, name()) }
	if err := newServer(ctx, s, pickPort); err != nil {
		return nil, err
	}
	return &NATS{s}, nil
}

// natsReady requires JetStream to answer, not just the port to accept:
// after a restart JetStream recovers its streams before it serves them.
func natsReady(ctx context.Context, addr, name string) error {
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	if got := nc.ConnectedServerName(); got != name {
		return fmt.Errorf("%s is served by nats-server %q, not %q", addr, got, name)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.AccountInfo(ctx)
	return err
}

// URL is the client URL, nats://127.0.0.1:port.
func (n *NATS) URL() string { return "nats://" + n.s.addr() }

// Port is the client port; it stays the same across restarts.
func (n *NATS) Port() int { return n.s.port }

// StoreDir is the server's JetStream store directory (-sd).
func (n *NATS) StoreDir() string { return n.s.dir }

// PID is the server's process id, 0 while it is not running.
func (n *NATS) PID() int { return n.s.pid() }

// Kill ends the server with SIGKILL, as a crash would, and returns once it
// is gone. Killing a server that is not running does nothing.
func (n *NATS) Kill() error { return n.s.kill() }

// Restart starts the server again on the same port with the same store, so
// JetStream's streams and messages survive, and returns once JetStream
// answers. A running server is killed first.
func (n *NATS) Restart(ctx context.Context) error { return n.s.restart(ctx) }

// Close kills the server and removes its directory and store. It may be
// called more than once.
func (n *NATS) Close() error { return n.s.close() }

// NewNATS starts a server for one test and closes it when the test and its
// subtests are done. It fails the test if the server cannot start.
func NewNATS(t testing.TB) *NATS {
	t.Helper()
	n, err := StartNATS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}
