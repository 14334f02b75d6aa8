// Package configstore keeps connector configurations in a JetStream KV
// bucket, one key per connector ("<org>.<name>"), so that every proxy
// instance watches the same configurations and a change is in force
// everywhere without a restart. Secrets are stored apart from the rest of
// the configuration and, when a key is configured, sealed with AES-256-GCM
// (bound to their key name, so a sealed value cannot be moved to another
// connector).
package configstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("no such connector")
	ErrConflict = errors.New("the connector changed since the revision given")
)

// Store is the bucket.
type Store struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD // nil: secrets stored in clear
}

// Open creates or opens the bucket. sealKey, if not nil, is a 32-byte
// AES-256 key that seals secrets.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, sealKey []byte) (*Store, error) {
	s := &Store{}
	if sealKey != nil {
		if len(sealKey) != 32 {
			return nil, fmt.Errorf("config key: want 32 bytes (AES-256), have %d", len(sealKey))
		}
		block, err := aes.NewCipher(sealKey)
		if err != nil {
			return nil, err
		}
		if s.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "connector-proxy: connector configurations by <org>.<name>",
		History: 10, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w", bucket, err)
	}
	s.kv = kv
	return s, nil
}

// Key is a connector's key in the bucket.
func Key(org, name string) string { return org + "." + name }

// record is a stored value.
type record struct {
	Connector domain.Connector  `json:"connector"` // secrets redacted
	Secrets   map[string]string `json:"secrets,omitempty"`
	Sealed    string            `json:"sealed,omitempty"` // base64(nonce || AES-GCM(secrets JSON))
}

func (s *Store) encode(c domain.Connector) ([]byte, error) {
	r := record{Connector: c.Redact()}
	secrets := c.Secrets()
	if len(secrets) > 0 {
		if s.aead == nil {
			r.Secrets = secrets
		} else {
			plain, _ := json.Marshal(secrets)
			nonce := make([]byte, s.aead.NonceSize())
			if _, err := rand.Read(nonce); err != nil {
				return nil, err
			}
			r.Sealed = base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(Key(c.Org, c.Name))))
		}
	}
	return json.Marshal(r)
}

func (s *Store) decode(key string, b []byte) (domain.Connector, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return domain.Connector{}, fmt.Errorf("connector %s: stored value is not JSON: %w", key, err)
	}
	secrets := r.Secrets
	if r.Sealed != "" {
		if s.aead == nil {
			return domain.Connector{}, fmt.Errorf("connector %s: secrets are sealed and no config key is set (--config-key)", key)
		}
		raw, err := base64.StdEncoding.DecodeString(r.Sealed)
		n := s.aead.NonceSize()
		if err != nil || len(raw) < n {
			return domain.Connector{}, fmt.Errorf("connector %s: sealed secrets are damaged", key)
		}
		plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(key))
		if err != nil {
			return domain.Connector{}, fmt.Errorf("connector %s: sealed secrets do not open with this config key", key)
		}
		if err := json.Unmarshal(plain, &secrets); err != nil {
			return domain.Connector{}, fmt.Errorf("connector %s: sealed secrets are damaged", key)
		}
	}
	c := r.Connector
	for name, v := range secrets {
		c.SetSecret(name, v)
	}
	return c, nil
}

// Get reads one connector and its revision.
func (s *Store) Get(ctx context.Context, org, name string) (domain.Connector, uint64, error) {
	e, err := s.kv.Get(ctx, Key(org, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return domain.Connector{}, 0, ErrNotFound
	}
	if err != nil {
		return domain.Connector{}, 0, fmt.Errorf("read connector %s: %w", Key(org, name), err)
	}
	c, err := s.decode(e.Key(), e.Value())
	return c, e.Revision(), err
}

// Put stores a connector. expect is the revision the caller read (0: it
// must not exist yet; ^uint64(0): whatever is there).
func (s *Store) Put(ctx context.Context, c domain.Connector, expect uint64) (uint64, error) {
	b, err := s.encode(c)
	if err != nil {
		return 0, err
	}
	k := Key(c.Org, c.Name)
	var rev uint64
	switch expect {
	case Any:
		rev, err = s.kv.Put(ctx, k, b)
	case 0:
		rev, err = s.kv.Create(ctx, k, b)
	default:
		rev, err = s.kv.Update(ctx, k, b, expect)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("store connector %s: %w", k, err)
	}
	return rev, nil
}

// Any is Put's expect for an unconditional write.
const Any = ^uint64(0)

// Delete removes a connector.
func (s *Store) Delete(ctx context.Context, org, name string) error {
	if _, _, err := s.Get(ctx, org, name); err != nil && errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	if err := s.kv.Delete(ctx, Key(org, name)); err != nil {
		return fmt.Errorf("delete connector %s: %w", Key(org, name), err)
	}
	return nil
}

// Change is one connector's new state, from Watch.
type Change struct {
	Org, Name string
	Connector domain.Connector // zero when Deleted or Err
	Revision  uint64
	Deleted   bool
	Err       error // the stored value could not be read
}

// Watch delivers every connector, then every change, to f (from one
// goroutine) until ctx ends; loaded is closed once the connectors stored
// at the start have been delivered.
func (s *Store) Watch(ctx context.Context, f func(Change)) (loaded <-chan struct{}, err error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch connectors: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer w.Stop()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					if initial {
						initial = false
						close(done)
					}
					continue
				}
				org, name, _ := strings.Cut(e.Key(), ".")
				ch := Change{Org: org, Name: name, Revision: e.Revision()}
				switch e.Operation() {
				case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
					ch.Deleted = true
				default:
					ch.Connector, ch.Err = s.decode(e.Key(), e.Value())
				}
				f(ch)
			}
		}
	}()
	return done, nil
}

// List reads every connector (for the admin API), in key order.
func (s *Store) List(ctx context.Context) ([]Change, error) {
	l, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list connectors: %w", err)
	}
	var out []Change
	for k := range l.Keys() {
		org, name, _ := strings.Cut(k, ".")
		c, rev, err := s.Get(ctx, org, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		out = append(out, Change{Org: org, Name: name, Connector: c, Revision: rev, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return Key(out[i].Org, out[i].Name) < Key(out[j].Org, out[j].Name) })
	return out, nil
}
