package app

import (
	"container/list"
	"encoding/json"
	"sync"
	"time"
)

// cache holds read results by request key, least recently used first out
// when its byte budget is spent. An entry is fresh for its TTL, then usable
// only as a stale answer while the upstream fails, then gone.
type cache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // of *cached, most recent at the front
	byKey map[string]*list.Element
}

type cached struct {
	key        string
	val        json.RawMessage
	stored     time.Time
	freshUntil time.Time
	staleUntil time.Time
}

// entryOverhead approximates an entry's bookkeeping in bytes.
const entryOverhead = 160

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, order: list.New(), byKey: map[string]*list.Element{}}
}

func (e *cached) bytes() int64 { return int64(len(e.key)+len(e.val)) + entryOverhead }

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

// put stores a result; one larger than an eighth of the budget is not
// cached (it would evict too much).
func (c *cache) put(key string, val json.RawMessage, now time.Time, ttl, staleFor time.Duration) {
	e := &cached{key: key, val: val, stored: now, freshUntil: now.Add(ttl), staleUntil: now.Add(ttl + staleFor)}
	if e.bytes() > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.removeLocked(el)
	}
	for c.size+e.bytes() > c.max && c.order.Len() > 0 {
		c.removeLocked(c.order.Back())
	}
	c.byKey[key] = c.order.PushFront(e)
	c.size += e.bytes()
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cached)
	delete(c.byKey, e.key)
	c.size -= e.bytes()
}

// stats are the entry count and bytes used.
func (c *cache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.size
}
