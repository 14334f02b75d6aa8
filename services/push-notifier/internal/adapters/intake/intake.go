// Package intake takes the first delivery of a push request in one Redis
// round trip: it reads the user's devices, admits the request against the
// user's rate limit and claims every device for this instance — the work
// of the registry, the rate limit and the ledger, which the push would
// otherwise wait on in two round trips (four Redis calls).
//
// It only acts on a request that has no record yet and passes its limit.
// Anything else — a redelivery, a user with no device, the limit reached —
// is left untouched for the notifier's step-by-step path, which reads the
// record and decides what each mark means.
//
// It writes the same keys as those packages, in the same forms: the
// record <prefix>req:<id> (ledger), the window <prefix>rate:<user>
// (ratelimit), and reads <prefix>devices:<user> (registry).
package intake

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ledger"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ratelimit"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/registry"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Intake is the one-round-trip start of a request.
type Intake struct {
	rdb    *redis.Client
	prefix string
	limit  int
	window time.Duration
}

// New uses rdb with the key prefix shared with the registry, ledger and
// rate limit; limit and window are the rate limit's (limit 0: none).
func New(rdb *redis.Client, prefix string, limit int, window time.Duration) *Intake {
	return &Intake{rdb: rdb, prefix: prefix, limit: limit, window: window}
}

// KEYS[1] the request's record, KEYS[2] the user's devices, KEYS[3] the
// user's rate window. ARGV[1] the claim, ARGV[2] the record's expiry (Unix
// ms), ARGV[3] now (ms), ARGV[4] window (ms), ARGV[5] limit (0: none),
// ARGV[6] request id. Returns {0} having written nothing, or {1, the
// devices hash as HGETALL gives it, the device ids claimed}.
//
// A device entry is claimed when it decodes to an object naming its own
// token and an id — the registry's reading of it; an entry read otherwise
// in Go is left for the step-by-step path to claim or skip.
var begin = redis.NewScript(ratelimit.AdmitLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local devs = redis.call('HGETALL', KEYS[2])
local ids = {}
for i = 1, #devs, 2 do
  local ok, d = pcall(cjson.decode, devs[i + 1])
  if ok and type(d) == 'table' and d.token == devs[i] and type(d.id) == 'string' and d.id ~= '' and d.id ~= '_request' then
    ids[#ids + 1] = d.id
  end
end
if #ids == 0 then return {0} end
if tonumber(ARGV[5]) > 0 and admit(KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6]) == 0 then return {0} end
for _, id in ipairs(ids) do redis.call('HSET', KEYS[1], id, ARGV[1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {1, devs, ids}
`)

// Begin takes request id to user in, claiming its devices for owner until
// the lease ends. ok is false when it did nothing: the request has a
// record already, the user has no device, or the rate limit refuses it.
func (in *Intake) Begin(ctx context.Context, requestID, user, owner string, until, requestExpiry time.Time) (domain.Started, bool, error) {
	claim := ledger.ClaimMark(owner, until)
	keys := []string{ledger.Key(in.prefix, requestID), registry.DevicesKey(in.prefix, user), ratelimit.Key(in.prefix, user)}
	res, err := begin.Run(ctx, in.rdb, keys, claim.Raw, ledger.ExpireAt(requestExpiry),
		time.Now().UnixMilli(), in.window.Milliseconds(), in.limit, requestID).Slice()
	if err != nil {
		return domain.Started{}, false, fmt.Errorf("take in push request %s: %w", requestID, err)
	}
	if len(res) != 3 {
		return domain.Started{}, false, nil
	}
	flat, _ := res[1].([]any)
	ids, _ := res[2].([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	st := domain.Started{Devices: registry.Decode(m), Claims: make(map[string]domain.Mark, len(ids))}
	decoded := make(map[string]bool, len(st.Devices))
	for _, d := range st.Devices {
		decoded[d.ID] = true
	}
	// A claim on an entry the script read and Go does not (a field Go
	// cannot parse) would never be settled: take it back. With no device
	// left, the request is the step-by-step path's (no_devices).
	var orphans []string
	for _, id := range ids {
		if s, ok := id.(string); ok {
			if decoded[s] {
				st.Claims[s] = claim
			} else {
				orphans = append(orphans, s)
			}
		}
	}
	if len(orphans) > 0 {
		if err := in.rdb.HDel(ctx, keys[0], orphans...).Err(); err != nil {
			return domain.Started{}, false, fmt.Errorf("take in push request %s: release claims on unreadable devices: %w", requestID, err)
		}
	}
	if len(st.Claims) == 0 {
		return domain.Started{}, false, nil
	}
	return st, true, nil
}
