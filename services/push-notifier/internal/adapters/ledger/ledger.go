// Package ledger is the push-notifier's idempotency record in Redis: per
// request id a hash whose fields are the devices pushed to (and "_request"
// for an outcome of the whole request). A field is first a claim — this
// instance is about to push to this device — and then the outcome. The
// claim is written before the push and never taken over: a claim left by
// a crashed instance means "may have been sent", and the push is not
// sent again (docs/operations/push-notifier.md, "Exactly once").
//
// Key: <prefix>req:<request id> (hash), expiring a day after the push's
// own expiry, when no redelivery can push it any more.
package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Retention is how long a request's record outlives its expiry.
const Retention = 24 * time.Hour

// Ledger is the record.
type Ledger struct {
	rdb    *redis.Client
	prefix string
}

// New uses rdb with key prefix.
func New(rdb *redis.Client, prefix string) *Ledger { return &Ledger{rdb: rdb, prefix: prefix} }

func (l *Ledger) key(requestID string) string { return Key(l.prefix, requestID) }

// Key is the request's record.
func Key(prefix, requestID string) string { return prefix + "req:" + requestID }

// Load returns every field of the request.
func (l *Ledger) Load(ctx context.Context, requestID string) (map[string]domain.Mark, error) {
	m, err := l.rdb.HGetAll(ctx, l.key(requestID)).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", requestID, err)
	}
	out := make(map[string]domain.Mark, len(m))
	for f, v := range m {
		var e domain.Mark
		if json.Unmarshal([]byte(v), &e) == nil {
			e.Raw = v
			out[f] = e
		}
	}
	return out, nil
}

// KEYS[1] hash; ARGV field, value, pexpireat ms. Sets field if absent and
// returns "" ; else returns the current value.
var setNX = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local at = tonumber(ARGV[3])
local ttl = redis.call('PEXPIRETIME', KEYS[1])
if ttl < at then redis.call('PEXPIREAT', KEYS[1], at) end
return ''
`)

// KEYS[1] hash; ARGV field, expected value, new value ("" deletes).
// Returns 1 if the field held the expected value.
var cas = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`)

// ExpireAt is when the record of a request expiring at requestExpiry
// goes, in Unix ms.
func ExpireAt(requestExpiry time.Time) int64 { return requestExpiry.Add(Retention).UnixMilli() }

// Claim writes a claim by owner on field unless the field exists. It
// returns the claim written (ok) or the entry found.
func (l *Ledger) Claim(ctx context.Context, requestID, field, owner string, until, requestExpiry time.Time) (domain.Mark, bool, error) {
	return l.setNX(ctx, requestID, field, ClaimMark(owner, until), requestExpiry)
}

// ClaimMark is owner's claim with a lease until; its Raw is what a
// field holding it stores, which Finish and Release compare with.
func ClaimMark(owner string, until time.Time) domain.Mark {
	return stored(domain.Mark{State: domain.Claimed, Owner: owner, Until: until.UTC()})
}

// stored is e with Raw, its stored form.
func stored(e domain.Mark) domain.Mark {
	b, _ := json.Marshal(e)
	e.Raw = string(b)
	return e
}

// Record writes an outcome on field unless the field exists (request-level
// outcomes, which need no claim).
func (l *Ledger) Record(ctx context.Context, requestID, field string, o domain.Outcome, requestExpiry time.Time) (domain.Mark, bool, error) {
	return l.setNX(ctx, requestID, field, stored(domain.Mark{State: domain.Done, Outcome: &o}), requestExpiry)
}

// setNX stores e (with its Raw) on field unless the field exists.
func (l *Ledger) setNX(ctx context.Context, requestID, field string, e domain.Mark, requestExpiry time.Time) (domain.Mark, bool, error) {
	cur, err := setNX.Run(ctx, l.rdb, []string{l.key(requestID)}, field, e.Raw, ExpireAt(requestExpiry)).Text()
	if err != nil {
		return domain.Mark{}, false, fmt.Errorf("ledger of %s: %w", requestID, err)
	}
	if cur == "" {
		return e, true, nil
	}
	var found domain.Mark
	if err := json.Unmarshal([]byte(cur), &found); err != nil {
		return domain.Mark{}, false, fmt.Errorf("ledger of %s field %s: %w", requestID, field, err)
	}
	found.Raw = cur
	return found, false, nil
}

// Finish replaces the claim (as read or written) with the outcome. It
// reports false when the field no longer holds that claim.
func (l *Ledger) Finish(ctx context.Context, requestID, field string, claim domain.Mark, o domain.Outcome) (bool, error) {
	b, _ := json.Marshal(domain.Mark{State: domain.Done, Outcome: &o})
	n, err := cas.Run(ctx, l.rdb, []string{l.key(requestID)}, field, claim.Raw, b).Int()
	if err != nil {
		return false, fmt.Errorf("ledger of %s: %w", requestID, err)
	}
	return n == 1, nil
}

// Release deletes our claim: the push is known not to have been accepted
// (only retryable answers so far) and another instance may take it.
func (l *Ledger) Release(ctx context.Context, requestID, field string, claim domain.Mark) error {
	_, err := cas.Run(ctx, l.rdb, []string{l.key(requestID)}, field, claim.Raw, "").Int()
	if err != nil {
		return fmt.Errorf("ledger of %s: %w", requestID, err)
	}
	return nil
}
