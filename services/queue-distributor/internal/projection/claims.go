package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Claim takes the one-off job name for ttl: true for the single instance
// that gets it. Instances use it so a timed action (an announcement) runs
// once however many of them see it due. Claims live under lock:, outside
// the projection's checksum: they are not state, and a flush only costs a
// repeat.
func (s *Store) Claim(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.key("lock", "claim", name), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	return ok, nil
}

// NoAgentSince records whether queue has a logged-in agent at now and
// returns since when it has had none (zero: it has one). Every instance
// shares the one record, so they agree on when "no agent" began.
func (s *Store) NoAgentSince(ctx context.Context, queue string, now time.Time, hasAgent bool) (time.Time, error) {
	key := s.key("lock", "noagent", queue)
	if hasAgent {
		if err := s.rdb.Del(ctx, key).Err(); err != nil {
			return time.Time{}, fmt.Errorf("queue %s has agents again: %w", queue, err)
		}
		return time.Time{}, nil
	}
	if err := s.rdb.SetNX(ctx, key, now.UnixMilli(), 0).Err(); err != nil {
		return time.Time{}, fmt.Errorf("queue %s without agents: %w", queue, err)
	}
	ms, err := s.rdb.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) { // an agent came back between the two
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("queue %s without agents: %w", queue, err)
	}
	return time.UnixMilli(ms), nil
}
