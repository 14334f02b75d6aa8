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

// AdmitLua defines admit(key, now ms, window ms, limit, request id) for
// scripts that admit a request among other work: 1 admitted (now or
// before), 0 refused. Every script that admits goes through it, so the
// window means the same wherever a request is counted.
const AdmitLua = `
local function admit(key, now, window, limit, id)
  if redis.call('ZSCORE', key, id) then return 1 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', tonumber(now) - tonumber(window))
  if redis.call('ZCARD', key) >= tonumber(limit) then return 0 end
  redis.call('ZADD', key, now, id)
  redis.call('PEXPIRE', key, window)
  return 1
end
`

// KEYS[1] window; ARGV now ms, window ms, limit, request id.
var allow = redis.NewScript(AdmitLua + `return admit(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])`)

// Key is the user's window.
func Key(prefix, user string) string { return prefix + "rate:" + user }

// Allow reports whether request id of user may be pushed now; a request
// already admitted stays admitted.
func (l *Limiter) Allow(ctx context.Context, user, requestID string) (bool, error) {
	if l.limit <= 0 {
		return true, nil
	}
	n, err := allow.Run(ctx, l.rdb, []string{Key(l.prefix, user)}, time.Now().UnixMilli(), l.window.Milliseconds(), l.limit, requestID).Int()
	if err != nil {
		return false, fmt.Errorf("rate limit of %s: %w", user, err)
	}
	return n == 1, nil
}
