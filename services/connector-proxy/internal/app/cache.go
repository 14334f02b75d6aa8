package app

import (
	"container/list"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// cache holds read results by request key, least recently used first out
// when its byte budget is spent. An entry is fresh for its TTL, then usable
// only as a stale answer while the upstream fails, then gone — or gone at
// once when a write through this proxy may have changed what it read.
//
// Writes are tracked per scope (an org's connector): every entry is indexed
// by the words of its read (the object, the query's identifiers), so that
// a write to an object drops the entries that name it; and each scope
// counts its writes, so a read that was in flight while a write went by
// does not store what it got (it may predate the write).
type cache struct {
	mu     sync.Mutex
	max    int64
	size   int64
	order  *list.List // of *cached, most recent at the front
	byKey  map[string]*list.Element
	byTerm map[string]map[string]struct{} // scope \x00 term → keys
	epochs map[string]uint64              // scope → writes begun or ended
}

type cached struct {
	key        string
	scope      string
	terms      []string // lower case; "" (every entry): the whole scope; anyTerm: any write to it
	val        json.RawMessage
	stored     time.Time
	freshUntil time.Time
	staleUntil time.Time
}

// anyTerm indexes an entry that every write to its scope drops: one whose
// read named too many words to index, and — as the empty object of a
// write — a write that names no object (an HTTP endpoint that is not a
// read), which drops the whole scope.
const anyTerm = "*"

// maxTerms bounds the words indexed for one entry.
const maxTerms = 64

// entryOverhead approximates an entry's bookkeeping in bytes; termOverhead
// an index word's.
const (
	entryOverhead = 160
	termOverhead  = 64
)

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, order: list.New(), byKey: map[string]*list.Element{},
		byTerm: map[string]map[string]struct{}{}, epochs: map[string]uint64{}}
}

func (e *cached) bytes() int64 {
	n := int64(len(e.key)+len(e.val)) + entryOverhead
	for _, t := range e.terms {
		n += int64(len(e.scope)+len(t)) + termOverhead
	}
	return n
}

// get returns the entry for key if it is fresh or still usable stale.
func (c *cache) get(key string, now time.Time) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return cached{}, false
	}
	e := el.Value.(*cached)
	if now.After(e.staleUntil) {
		c.removeLocked(el)
		return cached{}, false
	}
	c.order.MoveToFront(el)
	return *e, true
}

// epoch is scope's count of writes begun or ended: a read takes it before
// going upstream and hands it to put.
func (c *cache) epoch(scope string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epochs[scope]
}

// put stores a read's result unless a write to its scope began or ended
// since the read took epoch (it may hold what the write replaced); one
// larger than an eighth of the budget is not cached (it would evict too
// much). It reports whether the result was stored.
func (c *cache) put(key, scope string, terms []string, epoch uint64, val json.RawMessage, now time.Time, ttl, staleFor time.Duration) bool {
	// "" indexes the entry under its whole scope.
	e := &cached{key: key, scope: scope, terms: append([]string{""}, terms...), val: val, stored: now, freshUntil: now.Add(ttl), staleUntil: now.Add(ttl + staleFor)}
	if e.bytes() > c.max/8 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochs[scope] != epoch {
		return false
	}
	if el, ok := c.byKey[key]; ok {
		c.removeLocked(el)
	}
	for c.size+e.bytes() > c.max && c.order.Len() > 0 {
		c.removeLocked(c.order.Back())
	}
	c.byKey[key] = c.order.PushFront(e)
	c.size += e.bytes()
	for _, t := range e.terms {
		ix := c.byTerm[scope+"\x00"+t]
		if ix == nil {
			ix = map[string]struct{}{}
			c.byTerm[scope+"\x00"+t] = ix
		}
		ix[key] = struct{}{}
	}
	return true
}

// write marks a write to object in scope, once as it begins and again as
// it ends: it drops the entries that name object (object "": every entry
// of the scope) and moves the scope's epoch, so that no read in flight
// meanwhile stores its result. It returns the entries dropped.
func (c *cache) write(scope, object string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epochs[scope]++
	terms := []string{strings.ToLower(object), anyTerm}
	if object == "" {
		terms = []string{""} // every entry of the scope is indexed under ""
	}
	dropped := 0
	for _, t := range terms {
		for key := range c.byTerm[scope+"\x00"+t] {
			if el, ok := c.byKey[key]; ok {
				c.removeLocked(el)
				dropped++
			}
		}
	}
	return dropped
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cached)
	delete(c.byKey, e.key)
	c.size -= e.bytes()
	for _, t := range e.terms {
		ix := c.byTerm[e.scope+"\x00"+t]
		delete(ix, e.key)
		if len(ix) == 0 {
			delete(c.byTerm, e.scope+"\x00"+t)
		}
	}
}

// stats are the entry count and bytes used.
func (c *cache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.size
}
