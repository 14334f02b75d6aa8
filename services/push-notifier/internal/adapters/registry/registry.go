// Package registry keeps the device registry in Redis: per user a hash
// token → device (JSON), and per token the user it belongs to, so a
// device that signs in as someone else moves instead of waking both.
//
// Keys (prefix default sy:push:): <prefix>devices:<user> (hash),
// <prefix>token:<token> (string: user). One Redis server, not a cluster:
// the register script touches the previous owner's hash, a key it
// computes.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// ErrNotFound: no such device for the user.
var ErrNotFound = errors.New("no such device")

// ErrTooMany: the user has the maximum number of devices.
var ErrTooMany = errors.New("too many devices")

// Store is the registry.
type Store struct {
	rdb    *redis.Client
	prefix string
	max    int
}

// New uses rdb with key prefix; max bounds the devices of one user.
func New(rdb *redis.Client, prefix string, max int) *Store {
	if max <= 0 {
		max = 16
	}
	return &Store{rdb: rdb, prefix: prefix, max: max}
}

func (s *Store) devicesKey(user string) string { return DevicesKey(s.prefix, user) }

// DevicesKey is the user's devices.
func DevicesKey(prefix, user string) string   { return prefix + "devices:" + user }
func (s *Store) tokenKey(token string) string { return s.prefix + "token:" + token }

// register: KEYS[1] the user's devices, KEYS[2] the token's owner;
// ARGV user, token, device JSON, max, prefix. Returns {created(1)/replaced(2)/full(0), previous owner}.
var register = redis.NewScript(`
local prev = redis.call('GET', KEYS[2])
local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if not exists and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {0, ''} end
if prev and prev ~= ARGV[1] then redis.call('HDEL', ARGV[5] .. 'devices:' .. prev, ARGV[2]) else prev = '' end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1])
if exists then return {2, prev} end
return {1, prev}
`)

// unregister: KEYS[1] devices, KEYS[2] token owner; ARGV user, token.
var unregister = redis.NewScript(`
local n = redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return n
`)

// Register stores d (validated) for user. It reports whether the device
// was new, and the user it was taken from ("" if none).
func (s *Store) Register(ctx context.Context, user string, d domain.Device) (created bool, movedFrom string, err error) {
	if d.RegisteredAt.IsZero() {
		d.RegisteredAt = time.Now().UTC()
	}
	b, err := json.Marshal(d)
	if err != nil {
		return false, "", err
	}
	res, err := register.Run(ctx, s.rdb, []string{s.devicesKey(user), s.tokenKey(d.Token)}, user, d.Token, b, s.max, s.prefix).Slice()
	if err != nil {
		return false, "", fmt.Errorf("register device of %s: %w", user, err)
	}
	code, _ := res[0].(int64)
	prev, _ := res[1].(string)
	if code == 0 {
		return false, "", fmt.Errorf("%w: %s has %d (the maximum)", ErrTooMany, user, s.max)
	}
	return code == 1, prev, nil
}

// Unregister removes the device with token from user.
func (s *Store) Unregister(ctx context.Context, user, token string) error {
	n, err := unregister.Run(ctx, s.rdb, []string{s.devicesKey(user), s.tokenKey(token)}, user, token).Int()
	if err != nil {
		return fmt.Errorf("unregister device of %s: %w", user, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Remove is Unregister that does not mind a device already gone (the
// push path forgets dead tokens with it).
func (s *Store) Remove(ctx context.Context, user, token string) (bool, error) {
	err := s.Unregister(ctx, user, token)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Devices lists user's devices, oldest registration first.
func (s *Store) Devices(ctx context.Context, user string) ([]domain.Device, error) {
	m, err := s.rdb.HGetAll(ctx, s.devicesKey(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", user, err)
	}
	return Decode(m), nil
}

// Decode reads a user's devices hash (token → device JSON), oldest
// registration first. An entry that does not decode to a device with its
// own token is skipped: not ours to interpret (an operator can
// unregister it).
func Decode(m map[string]string) []domain.Device {
	out := make([]domain.Device, 0, len(m))
	for tok, v := range m {
		var d domain.Device
		if err := json.Unmarshal([]byte(v), &d); err != nil || d.Token != tok || d.ID == "" {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RegisteredAt.Equal(out[j].RegisteredAt) {
			return out[i].RegisteredAt.Before(out[j].RegisteredAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
