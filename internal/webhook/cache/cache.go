// Package cache is the decision cache of an HTTP plugin: a bounded LRU of
// salted request hashes to decisions with per-entry expiry.
//
// It avoids what goes wrong with the plugin decision caches of other MQTT
// brokers: it is bounded and evicts (least recently used first) instead
// of growing or refusing inserts; keys never hold a password; entries made
// together expire apart (jitter); and an expired entry is kept until it is
// evicted, so a plugin whose service is down can still answer with its last
// decision when its on-error policy is "stale".
package cache

import (
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Entry is one cached decision. It is never changed once added, so a
// reader may keep the pointer without a lock.
type Entry[V any] struct {
	Value   V
	Expires int64 // unix nanoseconds
	Client  Tag   // of the request's client id, for PurgeClient
	User    Tag   // of the request's user name, for PurgeUser
}

// Fresh reports whether the entry may still be served as a hit at now.
func (e *Entry[V]) Fresh(now time.Time) bool { return now.UnixNano() < e.Expires }

// Cache is a bounded LRU of decisions, safe for concurrent use. It is
// split into shards by key, each an LRU under its own lock, so lookups on
// many cores do not queue on one mutex; a shard evicts its own least
// recently used entry, which approximates a global LRU closely at the
// sizes where sharding starts.
type Cache[V any] struct {
	shards    []*lru.Cache[Key, *Entry[V]]
	evictions atomic.Uint64
}

// Sharding starts at shardMin entries per shard; smaller caches are one
// exact LRU.
const (
	maxShards = 16
	shardMin  = 256
)

// New returns a cache of at most size entries (size > 0).
func New[V any](size int) (*Cache[V], error) {
	n := min(maxShards, max(1, size/shardMin))
	c := &Cache[V]{shards: make([]*lru.Cache[Key, *Entry[V]], n)}
	for i := range c.shards {
		// The first size%n shards take one more, so the total is exactly size.
		per := size / n
		if i < size%n {
			per++
		}
		l, err := lru.New[Key, *Entry[V]](per)
		if err != nil {
			return nil, err
		}
		c.shards[i] = l
	}
	return c, nil
}

// shard picks by a key byte: keys are uniform hashes.
func (c *Cache[V]) shard(k Key) *lru.Cache[Key, *Entry[V]] {
	return c.shards[int(k[0])%len(c.shards)]
}

// Get returns the entry under k, fresh or expired, and marks it recently
// used. It does not allocate.
func (c *Cache[V]) Get(k Key) (*Entry[V], bool) { return c.shard(k).Get(k) }

// Add stores e under k, replacing what was there; when the cache is full
// the least recently used entry makes room, is counted in Evictions, and
// Add reports it.
func (c *Cache[V]) Add(k Key, e *Entry[V]) (evicted bool) {
	if c.shard(k).Add(k, e) {
		c.evictions.Add(1)
		return true
	}
	return false
}

// Remove deletes the entry under k, if any.
func (c *Cache[V]) Remove(k Key) { c.shard(k).Remove(k) }

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	n := 0
	for _, s := range c.shards {
		n += s.Len()
	}
	return n
}

// Evictions returns how many entries were pushed out to make room.
func (c *Cache[V]) Evictions() uint64 { return c.evictions.Load() }

// Purge removes every entry and returns how many there were.
func (c *Cache[V]) Purge() int {
	n := 0
	for _, s := range c.shards {
		n += s.Len()
		s.Purge()
	}
	return n
}

// PurgeClient removes the entries of requests from the client id tagged t.
func (c *Cache[V]) PurgeClient(t Tag) int {
	return c.purgeIf(func(e *Entry[V]) bool { return e.Client == t })
}

// PurgeUser removes the entries of requests with the user name tagged t.
func (c *Cache[V]) PurgeUser(t Tag) int {
	return c.purgeIf(func(e *Entry[V]) bool { return e.User == t })
}

// purgeIf scans every entry: O(size) with one short lock per entry, a few
// milliseconds at the default 10,000 entries. Purges are rare operator
// actions, so this is cheaper overall than an index that every insert and
// eviction would have to maintain on the decision path.
func (c *Cache[V]) purgeIf(match func(*Entry[V]) bool) int {
	n := 0
	for _, s := range c.shards {
		for _, k := range s.Keys() {
			if e, ok := s.Peek(k); ok && match(e) && s.Remove(k) {
				n++
			}
		}
	}
	return n
}
