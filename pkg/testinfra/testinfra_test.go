package testinfra

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

func gone(pid int) bool {
	return syscall.Kill(pid, 0) != nil
}

// JetStream data survives a SIGKILL and restart, de-duplication works, and
// Close leaves neither the process nor its directory behind.
func TestNATSKillRestartKeepsJetStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := StartNATS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publish := func() (*jetstream.PubAck, error) {
		nc, err := nats.Connect(n.URL())
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
			return nil, err
		}
		return js.Publish(ctx, "t.x", []byte("hello"), jetstream.WithMsgID("one"))
	}
	if _, err := publish(); err != nil {
		t.Fatal(err)
	}
	ack, err := publish()
	if err != nil || !ack.Duplicate {
		t.Fatalf("second publish with the same Nats-Msg-Id: %+v %v", ack, err)
	}
	pid := n.PID()
	if err := n.Kill(); err != nil || !gone(pid) {
		t.Fatalf("kill: %v", err)
	}
	if _, err := nats.Connect(n.URL(), nats.Timeout(200*time.Millisecond)); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	nc.Close()
	if info.State.Msgs != 1 {
		t.Fatalf("after restart the stream has %d messages, want 1", info.State.Msgs)
	}
	pid, dir := n.PID(), n.tmp
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatal("server still running after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp dir left behind: %v", err)
	}
}

func TestRedisFlushKillRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := NewRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get(ctx, "k").Result(); v != "v" {
		t.Fatalf("get %q", v)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after flush: %v", err)
	}
	pid := r.PID()
	if err := r.Kill(); err != nil || !gone(pid) {
		t.Fatalf("kill: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded against a killed server")
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "again", 0).Err(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestMissingBinarySaysHowToInstall(t *testing.T) {
	t.Setenv("SWITCHYARD_NATS_SERVER", "/nonexistent/nats-server")
	t.Setenv("SWITCHYARD_REDIS_SERVER", "/nonexistent/redis-server")
	if _, err := StartNATS(context.Background()); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("nats: %v", err)
	}
	if _, err := StartRedis(context.Background()); err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Fatalf("redis: %v", err)
	}
}
