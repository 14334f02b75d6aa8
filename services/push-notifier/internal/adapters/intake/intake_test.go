package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/intake"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ledger"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ratelimit"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/registry"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) {
	os.Exit(testinfra.Main(m, &infra, testinfra.WithRedis))
}

// fixture is one test's Redis keyspace (its own prefix) with the three
// stores the intake shares keys with.
type fixture struct {
	rdb    *redis.Client
	prefix string
	reg    *registry.Store
	led    *ledger.Ledger
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: infra.Redis.Addr()})
	t.Cleanup(func() { rdb.Close() })
	prefix := fmt.Sprintf("t:%s:%d:", t.Name(), time.Now().UnixNano()) // per run: -count
	return fixture{rdb: rdb, prefix: prefix, reg: registry.New(rdb, prefix, 16), led: ledger.New(rdb, prefix)}
}

func (f fixture) register(t *testing.T, user, tok string) domain.Device {
	t.Helper()
	d := domain.Device{Token: tok, Platform: domain.IOS, Bundle: "com.switchyard.agent"}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.reg.Register(t.Context(), user, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func token(n int) string { return fmt.Sprintf("%064x", n+1) }

func TestBeginClaimsEveryDeviceOfAFreshRequest(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a, b := f.register(t, "alice", token(1)), f.register(t, "alice", token(2))
	in := intake.New(f.rdb, f.prefix, 10, time.Minute)
	until, expiry := time.Now().Add(time.Minute), time.Now().Add(30*time.Second)

	st, ok, err := in.Begin(ctx, "req-1", "alice", "pn-1/x", until, expiry)
	if err != nil || !ok {
		t.Fatalf("Begin = %v, %v; want taken in", ok, err)
	}
	if len(st.Devices) != 2 || len(st.Claims) != 2 {
		t.Fatalf("devices %d, claims %d; want 2 and 2", len(st.Devices), len(st.Claims))
	}
	for _, d := range []domain.Device{a, b} {
		c, ok := st.Claims[d.ID]
		if !ok || c.State != domain.Claimed || c.Owner != "pn-1/x" {
			t.Fatalf("claim of %s = %+v", d.ID, c)
		}
		// The claim is stored as the ledger stores claims: the ledger
		// reads it back, and its compare-and-set takes the returned claim.
		marks, err := f.led.Load(ctx, "req-1")
		if err != nil || marks[d.ID].State != domain.Claimed || !marks[d.ID].Until.Equal(until.UTC()) {
			t.Fatalf("ledger sees %+v, %v", marks[d.ID], err)
		}
		done, err := f.led.Finish(ctx, "req-1", d.ID, c, domain.Outcome{Result: domain.ResultSent})
		if err != nil || !done {
			t.Fatalf("Finish with the intake's claim = %v, %v: the stored claim differs from the one returned", done, err)
		}
	}
	// Counted once in the user's window, and the record expires after
	// the push's own expiry, as the ledger's do.
	if n, _ := f.rdb.ZCard(ctx, ratelimit.Key(f.prefix, "alice")).Result(); n != 1 {
		t.Fatalf("rate window holds %d requests, want 1", n)
	}
	at, err := f.rdb.PExpireTime(ctx, ledger.Key(f.prefix, "req-1")).Result()
	if err != nil || at.Milliseconds() != ledger.ExpireAt(expiry) {
		t.Fatalf("record expires at %v (%v), want %d ms", at, err, ledger.ExpireAt(expiry))
	}
}

// Whatever Begin does not take it must leave as it found it: the
// step-by-step path reads the same keys next.
func TestBeginLeavesEverythingElseUntouched(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		limit int
		setup func(t *testing.T, f fixture)
	}{
		{"a redelivery: the request has a record", 10, func(t *testing.T, f fixture) {
			f.register(t, "alice", token(1))
			if _, _, err := f.led.Record(ctx, "req-1", domain.RequestField, domain.Outcome{Result: domain.ResultFailed}, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}},
		{"no device", 10, func(t *testing.T, f fixture) {}},
		{"only devices nobody can read", 10, func(t *testing.T, f fixture) {
			f.rdb.HSet(ctx, registry.DevicesKey(f.prefix, "alice"), token(1), "not json", token(2), `{"token":"someone else's","id":"abc"}`)
		}},
		{"the rate limit is reached", 1, func(t *testing.T, f fixture) {
			f.register(t, "alice", token(1))
			ok, err := ratelimit.New(f.rdb, f.prefix, 1, time.Minute).Allow(ctx, "alice", "req-0")
			if err != nil || !ok {
				t.Fatal("first request not admitted", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(t, f)
			before := dump(t, f)
			_, ok, err := intake.New(f.rdb, f.prefix, tc.limit, time.Minute).Begin(ctx, "req-1", "alice", "pn-1/x", time.Now().Add(time.Minute), time.Now().Add(time.Minute))
			if err != nil || ok {
				t.Fatalf("Begin = %v, %v; want not taken, no error", ok, err)
			}
			if after := dump(t, f); after != before {
				t.Fatalf("Begin wrote although it did not take the request:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// A device entry the registry would not read is not claimed; the others
// are.
func TestBeginSkipsUnreadableDevices(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	good := f.register(t, "alice", token(1))
	f.rdb.HSet(ctx, registry.DevicesKey(f.prefix, "alice"), token(2), "{broken")
	st, ok, err := intake.New(f.rdb, f.prefix, 0, time.Minute).Begin(ctx, "req-1", "alice", "pn-1/x", time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("Begin = %v, %v", ok, err)
	}
	if len(st.Devices) != 1 || st.Devices[0].ID != good.ID || len(st.Claims) != 1 {
		t.Fatalf("took %+v with claims %v; want only %s", st.Devices, st.Claims, good.ID)
	}
	fields, _ := f.rdb.HKeys(ctx, ledger.Key(f.prefix, "req-1")).Result()
	if len(fields) != 1 || fields[0] != good.ID {
		t.Fatalf("record fields %v, want [%s]", fields, good.ID)
	}
}

// An entry the script can read and Go cannot (a registration time that
// is not one) is not left claimed: nobody would ever settle that claim.
func TestBeginTakesBackClaimsGoCannotRead(t *testing.T) {
	ctx := t.Context()
	badTime := func(tok string) string {
		return fmt.Sprintf(`{"id":%q,"token":%q,"platform":"ios","registered_at":"yesterday"}`, domain.DeviceID(tok), tok)
	}
	t.Run("beside a good device", func(t *testing.T) {
		f := newFixture(t)
		good := f.register(t, "alice", token(1))
		f.rdb.HSet(ctx, registry.DevicesKey(f.prefix, "alice"), token(2), badTime(token(2)))
		st, ok, err := intake.New(f.rdb, f.prefix, 0, time.Minute).Begin(ctx, "req-1", "alice", "pn-1/x", time.Now().Add(time.Minute), time.Now().Add(time.Minute))
		if err != nil || !ok || len(st.Devices) != 1 || len(st.Claims) != 1 {
			t.Fatalf("Begin = %+v, %v, %v; want the good device only", st, ok, err)
		}
		if fields, _ := f.rdb.HKeys(ctx, ledger.Key(f.prefix, "req-1")).Result(); len(fields) != 1 || fields[0] != good.ID {
			t.Fatalf("record fields %v, want [%s]", fields, good.ID)
		}
	})
	t.Run("alone", func(t *testing.T) {
		f := newFixture(t)
		f.rdb.HSet(ctx, registry.DevicesKey(f.prefix, "alice"), token(2), badTime(token(2)))
		if _, ok, err := intake.New(f.rdb, f.prefix, 0, time.Minute).Begin(ctx, "req-1", "alice", "pn-1/x", time.Now().Add(time.Minute), time.Now().Add(time.Minute)); err != nil || ok {
			t.Fatalf("Begin = %v, %v; want not taken (the step-by-step path answers no_devices)", ok, err)
		}
		if n, _ := f.rdb.Exists(ctx, ledger.Key(f.prefix, "req-1")).Result(); n != 0 {
			t.Fatal("a record with claims nobody will settle is left")
		}
	})
}

// dump is every key of the fixture's prefix with its value.
func dump(t *testing.T, f fixture) string {
	t.Helper()
	ctx := context.Background()
	keys, err := f.rdb.Keys(ctx, f.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		switch typ, _ := f.rdb.Type(ctx, k).Result(); typ {
		case "hash":
			out[k], _ = f.rdb.HGetAll(ctx, k).Result()
		case "zset":
			out[k], _ = f.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			out[k], _ = f.rdb.Get(ctx, k).Result()
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}
