// Package tenantstate is the policies' kv: small per-tenant state (a
// counter, a flag, the last agent a caller spoke to) in a NATS KV bucket,
// each tenant under its own key prefix so one tenant's policy can never
// read or overwrite another's.
package tenantstate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// Bucket is where the state lives.
const Bucket = "switchyard_policy_state"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)

// Store is the bucket.
type Store struct{ kv jetstream.KeyValue }

// Open creates or opens the bucket. ttl, when positive, expires values not
// written for that long (state is for recent calls, not an archive);
// maxBytes bounds the whole bucket.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration, maxBytes int64) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, History: 1, TTL: ttl, MaxBytes: maxBytes, MaxValueSize: luaapi.MaxKVValue,
		Description: "Switchyard policy state, per tenant (kv.get/kv.set)",
	})
	if err != nil {
		return nil, fmt.Errorf("policy state bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Tenant is the state of one tenant; an invalid tenant name gets a KV that
// refuses every operation with a clear error.
func (s *Store) Tenant(name string) luaapi.KV {
	if !tenantRE.MatchString(name) {
		return badTenant{name}
	}
	return tenant{s.kv, name + "."}
}

type tenant struct {
	kv     jetstream.KeyValue
	prefix string
}

// escape maps a policy's key (any printable ASCII) onto one NATS KV key
// token: letters, digits, - and _ stay, everything else becomes =XX, so
// "visits.+4420" is stored as "visits=2E=2B4420" and no key can reach
// another tenant's prefix.
func escape(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

func (t tenant) Get(ctx context.Context, key string) (string, bool, error) {
	e, err := t.kv.Get(ctx, t.prefix+escape(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read state %s: %w", key, err)
	}
	return string(e.Value()), true, nil
}

func (t tenant) Set(ctx context.Context, key, value string) error {
	if _, err := t.kv.PutString(ctx, t.prefix+escape(key), value); err != nil {
		return fmt.Errorf("store state %s: %w", key, err)
	}
	return nil
}

func (t tenant) Delete(ctx context.Context, key string) error {
	if err := t.kv.Delete(ctx, t.prefix+escape(key)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete state %s: %w", key, err)
	}
	return nil
}

type badTenant struct{ name string }

func (b badTenant) err() error {
	return fmt.Errorf("tenant %q (channel variable switchyard_tenant) is not 1-64 letters, digits, _ or -", b.name)
}
func (b badTenant) Get(context.Context, string) (string, bool, error) { return "", false, b.err() }
func (b badTenant) Set(context.Context, string, string) error         { return b.err() }
func (b badTenant) Delete(context.Context, string) error              { return b.err() }
