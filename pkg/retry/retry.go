// Package retry is how a service waits for what it needs at start (NATS,
// its streams, Redis) without crashing: try, log why not, try again.
package retry

import (
	"context"
	"log/slog"
	"time"
)

// Every calls f until it succeeds, every interval, logging each failure as
// "cannot <what> yet; retrying" (with attrs) at warn level. It returns nil
// once f succeeded, or ctx's error if ctx ended first.
func Every(ctx context.Context, interval time.Duration, log *slog.Logger, what string, f func() error, attrs ...any) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		log.Warn("cannot "+what+" yet; retrying", append(attrs, "err", err)...)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
