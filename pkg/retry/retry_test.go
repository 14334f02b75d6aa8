package retry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	t.Run("until it succeeds, logging each failure", func(t *testing.T) {
		var logs bytes.Buffer
		calls := 0
		err := Every(context.Background(), time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), "start", func() error {
			if calls++; calls < 3 {
				return errors.New("nats away")
			}
			return nil
		}, "subject", "x")
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
		if n := strings.Count(logs.String(), `msg="cannot start yet; retrying" subject=x err="nats away"`); n != 2 {
			t.Fatalf("%d failure lines:\n%s", n, logs.String())
		}
	})
	t.Run("until the context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		err := Every(ctx, 5*time.Millisecond, slog.New(slog.DiscardHandler), "start", func() error { return errors.New("never") })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
	})
}
