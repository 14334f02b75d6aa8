package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// TakePlace returns (and forgets) the join time held for number in
// queue; ok is false when none is held. A place is held by the apply of
// queue.member.abandoned — the caller who hung up while waiting calls
// back within the queue's discard_abandoned_after and takes their place
// again — and given up by the number's next join; a rebuild restores
// the places still held.
func (s *Store) TakePlace(ctx context.Context, queue, number string) (joinedAt int64, ok bool, err error) {
	v, err := s.rdb.GetDel(ctx, s.key("place", queue, number)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("place of %s in %s: %w", number, queue, err)
	}
	return v, true, nil
}
