package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// HoldPlace keeps the join time of a caller who hung up while waiting, by
// queue and caller number, for ttl (the queue's discard_abandoned_after),
// so the caller who calls back takes their place again. It is not
// event-sourced: it lives a minute or so, and a flush only costs the
// caller their place.
func (s *Store) HoldPlace(ctx context.Context, queue, number string, joinedAt int64, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.key("lock", "place", queue, number), joinedAt, ttl).Err(); err != nil {
		return fmt.Errorf("hold the place of %s in %s: %w", number, queue, err)
	}
	return nil
}

// TakePlace returns (and forgets) the join time held for number in
// queue; ok is false when none is held.
func (s *Store) TakePlace(ctx context.Context, queue, number string) (joinedAt int64, ok bool, err error) {
	v, err := s.rdb.GetDel(ctx, s.key("lock", "place", queue, number)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("place of %s in %s: %w", number, queue, err)
	}
	return v, true, nil
}
