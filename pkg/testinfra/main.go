package testinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
)

// Servers are a test package's shared servers. A server Main was not asked
// for is nil.
type Servers struct {
	NATS  *NATS
	Redis *Redis
}

// Option names a server for Main to start.
type Option func(ctx context.Context, s *Servers) error

// WithNATS is the Option that starts a nats-server, as StartNATS does.
func WithNATS(ctx context.Context, s *Servers) (err error) {
	s.NATS, err = StartNATS(ctx)
	return err
}

// WithRedis is the Option that starts a redis-server, as StartRedis does.
func WithRedis(ctx context.Context, s *Servers) (err error) {
	s.Redis, err = StartRedis(ctx)
	return err
}

// Main starts the servers opts name, stores them in *out, runs the
// package's tests and closes the servers; it returns the exit code for
// os.Exit. Use it from TestMain:
//
//	var infra *testinfra.Servers
//
//	func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS)) }
//
// There is no testing.TB before the tests run, so a server that cannot
// start is reported on stderr, which go test shows, and fails the package
// without running its tests. So does a server that will not stop.
func Main(m *testing.M, out **Servers, opts ...Option) int {
	s := &Servers{}
	for _, o := range opts {
		if err := o(context.Background(), s); err != nil {
			fmt.Fprintln(os.Stderr, "testinfra:", err)
			s.Close()
			return 1
		}
	}
	*out = s
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "testinfra:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Close closes every server.
func (s *Servers) Close() error {
	var err error
	if s.NATS != nil {
		err = errors.Join(err, s.NATS.Close())
	}
	if s.Redis != nil {
		err = errors.Join(err, s.Redis.Close())
	}
	return err
}
