// Package ratelimit bounds the pushes one user gets in a sliding window,
// in Redis, shared by every instance. A request counts once however
// often it is delivered: the window holds request ids.
//
// Key: <prefix>rate:<user> (sorted set: request id scored by time).
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter is a sliding-window limit per user.
type Limiter struct {
	rdb    *redis.Client
	prefix string
	limit  int
	window time.Duration
}

// New allows limit requests per user per window; limit 0 allows all.
func New(rdb *redis.Client, prefix string, limit int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix, limit: limit, window: window}
}

// KEYS[1] window; ARGV now ms, window ms, limit, request id.
var allow = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// Allow reports whether request id of user may be pushed now; a request
// already admitted stays admitted.
func (l *Limiter) Allow(ctx context.Context, user, requestID string) (bool, error) {
	if l.limit <= 0 {
		return true, nil
	}
	n, err := allow.Run(ctx, l.rdb, []string{l.prefix + "rate:" + user}, time.Now().UnixMilli(), l.window.Milliseconds(), l.limit, requestID).Int()
	if err != nil {
		return false, fmt.Errorf("rate limit of %s: %w", user, err)
	}
	return n == 1, nil
}
