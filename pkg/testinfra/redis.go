package testinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisInstallHint = `run "make setup" or "sudo apt-get install redis-server"`

// Redis is a real redis-server without persistence: a kill loses its data,
// as it does in production where Redis holds only what can be rebuilt.
type Redis struct{ s *server }

func redisBinary() (string, error) {
	if p := os.Getenv("SWITCHYARD_REDIS_SERVER"); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("redis-server not found at %s (from SWITCHYARD_REDIS_SERVER: %v): point SWITCHYARD_REDIS_SERVER at a redis-server binary, or unset it and %s", p, err, redisInstallHint)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	// Debian puts it in /usr/bin, but PATH may be minimal under CI or sudo.
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", errors.New("redis-server not found: " + redisInstallHint)
}

// StartRedis starts redis-server on a free loopback port in a new temporary
// directory, and returns once it answers PING. ctx bounds the wait, not the
// server's life; Close stops it.
func StartRedis(ctx context.Context) (*Redis, error) {
	bin, err := redisBinary()
	if err != nil {
		return nil, err
	}
	s := &server{name: "redis-server", bin: bin, ready: redisReady}
	s.args = func(port int) []string {
		return []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--dir", s.dir, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--logfile", "", // stay a child, log to the captured stdout
		}
	}
	if err := newServer(ctx, s, pickPort); err != nil {
		return nil, err
	}
	return &Redis{s}, nil
}

// client makes a client that tries once and keeps to ctx's deadline:
// readiness polls and Flush do their own retrying, or none.
func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: time.Second, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
	})
}

// redisReady wants PING answered by process pid: INFO's process_id tells
// our server from another that holds the port.
func redisReady(ctx context.Context, addr string, pid int) error {
	c := client(addr)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return err
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid)
	for line := range strings.Lines(info) {
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
	return fmt.Errorf("%s is served by another redis-server, not pid %d", addr, pid)
}

// Addr is host:port, for redis.Options.Addr.
func (r *Redis) Addr() string { return r.s.addr() }

// URL is redis://127.0.0.1:port/0, for redis.ParseURL.
func (r *Redis) URL() string { return "redis://" + r.s.addr() + "/0" }

// Port is the server's port; it stays the same across restarts.
func (r *Redis) Port() int { return r.s.port }

// PID is the server's process id, 0 while it is not running.
func (r *Redis) PID() int { return r.s.pid() }

// Kill ends the server with SIGKILL and returns once it is gone; its data
// is lost. Killing a server that is not running does nothing.
func (r *Redis) Kill() error { return r.s.kill() }

// Restart starts the server again on the same port, empty, and returns once
// it answers PING. A running server is killed first.
func (r *Redis) Restart(ctx context.Context) error { return r.s.restart(ctx) }

// Flush empties every database (FLUSHALL).
func (r *Redis) Flush(ctx context.Context) error {
	// Checked first so that a flush of a killed server fails plainly,
	// without go-redis logging its dial failure.
	if !r.s.running() {
		return errors.New("redis-server: flush: not running")
	}
	c := client(r.s.addr())
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("redis-server: flush: %w", err)
	}
	return nil
}

// Close kills the server and removes its directory. It may be called more
// than once.
func (r *Redis) Close() error { return r.s.close() }

// NewRedis starts a server for one test and closes it when the test and its
// subtests are done. It fails the test if the server cannot start.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := StartRedis(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}
