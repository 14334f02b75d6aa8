package testinfra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis is a real redis-server with persistence off.
type Redis struct {
	proc *process
	port int
	tmp  string
}

func redisBinary() (string, error) {
	if p := os.Getenv("SWITCHYARD_REDIS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("redis-server not found at %s ($SWITCHYARD_REDIS_SERVER): run \"make setup\" or \"sudo apt-get install redis-server\"", p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("redis-server not found: run \"make setup\" or \"sudo apt-get install redis-server\"")
}

// StartRedis starts redis-server on a free loopback port in a new temporary
// directory, without persistence.
func StartRedis(ctx context.Context) (*Redis, error) {
	bin, err := redisBinary()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "switchyard-redis-")
	if err != nil {
		return nil, err
	}
	r := &Redis{tmp: tmp}
	for attempt := 0; ; attempt++ {
		if r.port, err = freePort(); err != nil {
			break
		}
		r.proc = &process{name: "redis-server", bin: bin, dir: tmp, args: []string{
			"--port", itoa(r.port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--daemonize", "no", "--logfile", "",
		}}
		if err = r.start(ctx); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return r, nil
}

func (r *Redis) start(ctx context.Context) error {
	if err := r.proc.start(); err != nil {
		return err
	}
	err := waitReady(ctx, r.proc, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: r.Addr()})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		r.proc.kill()
	}
	return err
}

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// URL is redis://host:port/0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// PID is the server's process id (0 when it is not running).
func (r *Redis) PID() int { return r.proc.pid() }

// Kill ends the server with SIGKILL; its data is gone (no persistence).
func (r *Redis) Kill() error { return r.proc.kill() }

// Restart starts the server again on the same port, empty.
func (r *Redis) Restart(ctx context.Context) error {
	if r.proc.running() {
		if err := r.proc.kill(); err != nil {
			return err
		}
	}
	return r.start(ctx)
}

// Flush empties every database (FLUSHALL).
func (r *Redis) Flush(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// Close stops the server and removes its directory.
func (r *Redis) Close() error {
	err := r.proc.kill()
	os.RemoveAll(r.tmp)
	return err
}

// NewRedis starts a server for one test and stops it when the test ends.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := StartRedis(context.Background())
	fatal(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}
