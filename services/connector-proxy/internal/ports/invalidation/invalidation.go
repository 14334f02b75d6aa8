// Package invalidation keeps the connector-proxy instances' caches from
// serving what a write through any of them may have changed: after a write
// this instance sent upstream, it publishes a notice on
// connector.invalidate (core NATS, every instance subscribes, no queue
// group), and on another instance's notice it drops the cached reads that
// name the written object (docs/operations/connector-proxy.md, "Cache").
//
// At most once: a notice lost while NATS is away leaves the other
// instances' cached reads to their TTL, the bound that holds anyway for
// changes made in the CRM itself.
package invalidation

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Subject carries the notices.
const Subject = "connector.invalidate"

// MaxNoticeBytes bounds a notice; a larger one is refused.
const MaxNoticeBytes = 1024

// Notice is a write one instance sent upstream: org's connector, the
// object written ("" when the write names none: every cached read of the
// connector goes), and the process that sent it.
type Notice struct {
	Org       string `json:"org"`
	Connector string `json:"connector"`
	Object    string `json:"object,omitempty"`
	Origin    string `json:"origin"`
}

// Invalidator drops cached reads (the engine).
type Invalidator interface {
	Invalidate(org, connector, object string)
}

// Bus sends and receives the notices.
type Bus struct {
	nc     *nats.Conn
	cache  Invalidator
	log    *slog.Logger
	origin string // this process: its own notices are not applied twice
	sub    *nats.Subscription
}

// New makes a bus on nc for cache.
func New(nc *nats.Conn, cache Invalidator, log *slog.Logger) *Bus {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Bus{nc: nc, cache: cache, log: log, origin: hex.EncodeToString(b)}
}

// Start subscribes to the other instances' notices.
func (b *Bus) Start() error {
	sub, err := b.nc.Subscribe(Subject, b.receive)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", Subject, err)
	}
	b.sub = sub
	return nil
}

// Stop unsubscribes.
func (b *Bus) Stop() {
	if b.sub != nil {
		_ = b.sub.Unsubscribe()
	}
}

// Publish tells the other instances of a write to org's connector's
// object. It does not wait: a notice that cannot be sent is logged.
func (b *Bus) Publish(org, connector, object string) {
	data, _ := json.Marshal(Notice{Org: org, Connector: connector, Object: object, Origin: b.origin})
	if err := b.nc.Publish(Subject, data); err != nil {
		b.log.Warn("cache invalidation not sent: other instances keep their cached reads until their TTL",
			"org", org, "connector", connector, "object", object, "err", err)
	}
}

func (b *Bus) receive(m *nats.Msg) {
	n, err := Parse(m.Data)
	if err != nil {
		b.log.Warn("cache invalidation notice refused", "subject", m.Subject, "err", err)
		return
	}
	if n.Origin == b.origin {
		return
	}
	b.cache.Invalidate(n.Org, n.Connector, n.Object)
}

// Parse decodes and checks a notice.
func Parse(data []byte) (Notice, error) {
	var n Notice
	if len(data) > MaxNoticeBytes {
		return n, fmt.Errorf("notice of %d bytes exceeds %d", len(data), MaxNoticeBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		return n, fmt.Errorf("notice is not the JSON of connector.invalidate: %w", err)
	}
	if dec.More() {
		return n, fmt.Errorf("notice has data after its JSON object")
	}
	switch {
	case !domain.ValidName(n.Org) || !domain.ValidName(n.Connector):
		return n, fmt.Errorf("notice names org %q and connector %q; want names of letters, digits, _ and -", n.Org, n.Connector)
	case n.Object != "" && !domain.ValidIdentifier(n.Object):
		return n, fmt.Errorf("notice names object %q; want an identifier or none", n.Object)
	case n.Origin == "" || len(n.Origin) > 64:
		return n, fmt.Errorf("notice has no origin (or one over 64 bytes)")
	}
	return n, nil
}
