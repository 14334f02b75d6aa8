package testinfra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is a real nats-server with JetStream.
type NATS struct {
	proc  *process
	port  int
	store string
	tmp   string
}

// natsBinary finds the server `make setup` builds from the version pinned
// in pkg/go.mod; a nats-server on PATH is not used, being of unknown age.
func natsBinary() (string, error) {
	if p := os.Getenv("SWITCHYARD_NATS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("nats-server not found at %s ($SWITCHYARD_NATS_SERVER): run \"make setup\", which builds it with: cd pkg && go build -o ../bin/nats-server github.com/nats-io/nats-server/v2", p)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("cannot find the repository to locate bin/nats-server (%v): set SWITCHYARD_NATS_SERVER", err)
	}
	p := filepath.Join(root, "bin", "nats-server")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("nats-server not found at %s: run \"make setup\", which builds it with: cd pkg && go build -o ../bin/nats-server github.com/nats-io/nats-server/v2", p)
	}
	return p, nil
}

// StartNATS starts a JetStream-enabled nats-server on a free loopback port
// with its store in a new temporary directory.
func StartNATS(ctx context.Context) (*NATS, error) {
	bin, err := natsBinary()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "switchyard-nats-")
	if err != nil {
		return nil, err
	}
	n := &NATS{tmp: tmp, store: filepath.Join(tmp, "js")}
	for attempt := 0; ; attempt++ {
		if n.port, err = freePort(); err != nil {
			break
		}
		n.proc = &process{name: "nats-server", bin: bin, dir: tmp,
			args: []string{"-js", "-sd", n.store, "-a", "127.0.0.1", "-p", itoa(n.port), "--no_advertise"}}
		if err = n.start(ctx); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return n, nil
}

func (n *NATS) start(ctx context.Context) error {
	if err := n.proc.start(); err != nil {
		return err
	}
	err := waitReady(ctx, n.proc, func(ctx context.Context) error {
		nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		n.proc.kill()
	}
	return err
}

// URL is the client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Port is the client port.
func (n *NATS) Port() int { return n.port }

// PID is the server's process id (0 when it is not running).
func (n *NATS) PID() int { return n.proc.pid() }

// Kill ends the server with SIGKILL, as a crash would.
func (n *NATS) Kill() error { return n.proc.kill() }

// Restart starts the server again on the same port with the same store, so
// JetStream's data survives, and waits until it serves.
func (n *NATS) Restart(ctx context.Context) error {
	if n.proc.running() {
		if err := n.proc.kill(); err != nil {
			return err
		}
	}
	return n.start(ctx)
}

// Close stops the server and removes its directory.
func (n *NATS) Close() error {
	err := n.proc.kill()
	os.RemoveAll(n.tmp)
	return err
}

// NewNATS starts a server for one test and stops it when the test ends.
func NewNATS(t testing.TB) *NATS {
	t.Helper()
	n, err := StartNATS(context.Background())
	fatal(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}
