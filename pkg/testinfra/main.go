package testinfra

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// Servers are a test package's shared servers.
type Servers struct {
	NATS  *NATS
	Redis *Redis
}

// Option chooses the servers Main starts.
type Option func(*Servers, context.Context) error

// WithNATS starts a nats-server.
func WithNATS(s *Servers, ctx context.Context) (err error) {
	s.NATS, err = StartNATS(ctx)
	return err
}

// WithRedis starts a redis-server.
func WithRedis(s *Servers, ctx context.Context) (err error) {
	s.Redis, err = StartRedis(ctx)
	return err
}

// Main starts the package's servers, runs its tests and stops them; use it
// from TestMain. A server that cannot start fails the package with the
// reason and how to fix it.
func Main(m *testing.M, out **Servers, opts ...Option) int {
	s := &Servers{}
	defer s.Close()
	for _, o := range opts {
		if err := o(s, context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "testinfra:", err)
			return 1
		}
	}
	*out = s
	return m.Run()
}

// Close stops every server.
func (s *Servers) Close() {
	if s.NATS != nil {
		s.NATS.Close()
	}
	if s.Redis != nil {
		s.Redis.Close()
	}
}
