package webhook

import (
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/cache"
)

// topicMemo sits in front of the decision cache for topic_filtering only.
// Every delivered message costs a publish and a receive check, and a cache
// hit spends most of its time on the salted SHA-256 key and the LRU lock;
// the memo answers a repeated check from a table read without a lock.
//
// docs/design.md §4 forbids plaintext credentials in cache keys, but a topic check
// carries no password, so the memo keys on the request's fields themselves
// and compares them exactly: no collision can hand one client another's
// decision.
//
// The memo never decides lifetimes: it only copies entries the main cache
// stored, with their expiry, so every TTL rule (cache_ttl, max-age,
// no-store, deny TTL, clamp, jitter) applies unchanged. An entry that has
// expired, or is about to (see coarseClock), is a miss that falls through
// to the normal path, which also serves stale decisions when the plugin is
// down.
//
// The table is two-way set associative with one slot per cache entry, so
// it is bounded by the cache size. Slots hold pointers to immutable items:
// a lookup is an atomic load and a compare, and writes nothing shared, so
// cores do not queue on a mutex or bounce its cache line as they would on a
// map under a lock. The price is that an insert into a full set replaces
// one of its two items at random even when others elsewhere are colder; a
// replaced item only costs one ordinary cache hit to put back.
type topicMemo struct {
	seed  maphash.Seed
	slots []atomic.Pointer[memoItem]
	ways  int // 2, or 1 for a one-entry cache
	sets  uint64
	// gen is bumped by every purge and by close. A filler reads it before
	// the main cache and withdraws its insert if it changed, so a decision
	// read just before a purge does not survive in the memo.
	gen atomic.Uint64
	off atomic.Bool // set by close: no more inserts

	clock     coarseClock
	testClock func() int64 // when set, the time for lookups instead of clock
}

// memoKey is exactly the fields of a topic_filtering request. The
// client's attributes are keyed by the Login holding them (nil when there
// are none): a Login is immutable, so the same pointer means the same
// attributes, and a new login merely misses once.
type memoKey struct {
	clientID, username, topic string
	action, qos               uint8
	retain                    bool
	attrs                     *mqtt.Login
}

// memoItem is one memoized decision. It is never changed once stored.
type memoItem struct {
	key     memoKey // strings owned by the item, never the broker's buffers
	d       hooks.Decision
	expires int64 // unix nanoseconds, copied from the cache entry
	// gen is the memo's generation the item is known good in: the one
	// its filler read before the cache, or a later one a purge it
	// survived gave it. A stamp of the item (stampOf) holds only while
	// gen is the memo's.
	gen uint64
}

// newTopicMemo returns a memo of at most size entries (size > 0). served
// counts the decisions it serves (the plugin's cache hits): while it stands
// still the memo's clock sleeps.
func newTopicMemo(size int, served func() uint64) *topicMemo {
	ways := min(2, size)
	sets := size / ways
	return &topicMemo{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[memoItem], sets*ways),
		ways: ways, sets: uint64(sets), clock: coarseClock{served: served}}
}

func keyOf(c *mqtt.ClientInfo, r mqtt.TopicRequest) memoKey {
	k := memoKey{clientID: c.ClientID, username: c.Username, topic: r.Topic,
		action: uint8(r.Action), qos: r.QoS, retain: r.Retain}
	if l := c.Login(); l != nil && len(l.Attributes) > 0 {
		k.attrs = l
	}
	return k
}

// set returns the slots k may occupy.
func (t *topicMemo) set(k *memoKey) []atomic.Pointer[memoItem] {
	// Only the client id, topic and action are hashed: hashing the whole
	// key (maphash.Comparable) costs a third of a hit, and the user name
	// and the small fields seldom tell apart keys the others do not. Keys
	// that differ only there share a set; item still compares whole keys.
	h := maphash.String(t.seed, k.topic) + 31*maphash.String(t.seed, k.clientID)
	h ^= uint64(k.action) * 0x9e3779b97f4a7c15
	// The high half of a 64x64 product maps the hash onto [0, sets)
	// without a division and without needing a power-of-two table.
	i, _ := bits.Mul64(h, t.sets)
	base := int(i) * t.ways
	return t.slots[base : base+t.ways]
}

// item returns the memoized item for k if it is still fresh at the clock
// reading at (readClock), or nil. It does not allocate.
func (t *topicMemo) item(k *memoKey, at int64) *memoItem {
	set := t.set(k)
	for i := range set {
		if it := set[i].Load(); it != nil && it.key == *k && at < it.expires {
			return it
		}
	}
	return nil
}

// stampOf is the stamp the chain keeps with its decision (see
// hooks.TopicFilterReuse): it holds until the item expires or the memo's
// generation moves on, which every purge and close makes it do before
// they return.
func stampOf(it *memoItem) hooks.Stamp {
	return hooks.Stamp{Gen: it.gen, Until: it.expires}
}

// holds reports whether a decision stamped s may still be served.
func (t *topicMemo) holds(s hooks.Stamp) bool {
	return t.gen.Load() == s.Gen && t.readClock() < s.Until
}

// readClock is the time to give item, in Unix nanoseconds. It is coarse
// (see coarseClock): a lookup must not cost a system clock read, which
// takes as long as the rest of a hit.
func (t *topicMemo) readClock() int64 {
	if t.testClock != nil {
		return t.testClock()
	}
	return t.clock.read()
}

// generation is what put must be given: read it before the cache.
func (t *topicMemo) generation() uint64 { return t.gen.Load() }

// put memoizes e under k (nothing on a nil memo) unless a purge or close
// came after gen. The strings are copied because the broker may pass a
// topic that aliases its read buffer, which it reuses once the check
// returns.
func (t *topicMemo) put(k memoKey, gen uint64, e *cache.Entry[hooks.Decision]) {
	if t == nil || t.off.Load() {
		return
	}
	t.clock.start()
	if e.Expires <= t.readClock() {
		return // item would not serve it; don't churn the slot
	}
	it := &memoItem{key: ownKey(k), d: e.Value, expires: e.Expires, gen: gen}
	set := t.set(&it.key)
	// Replace k's own older item, else an empty slot, else a random one.
	victim := -1
	for i := range set {
		old := set[i].Load()
		if old != nil && old.key == k {
			victim = i
			break
		}
		if old == nil && victim < 0 {
			victim = i
		}
	}
	if victim < 0 {
		victim = rand.IntN(len(set))
	}
	set[victim].Store(it)
	// A purge bumps gen before it scans, so either this sees the bump or
	// the scan comes after the Store and clears the item itself.
	if t.gen.Load() != gen {
		set[victim].CompareAndSwap(it, nil)
	}
}

// ownKey returns k with its strings copied into one allocation. A plain
// concatenation would not do: Go returns the lone non-empty operand
// itself, which may be the aliased topic.
func ownKey(k memoKey) memoKey {
	var b strings.Builder
	b.Grow(len(k.clientID) + len(k.username) + len(k.topic))
	b.WriteString(k.clientID)
	b.WriteString(k.username)
	b.WriteString(k.topic)
	s := b.String()
	c, u := len(k.clientID), len(k.clientID)+len(k.username)
	k.clientID, k.username, k.topic = s[:c], s[c:u], s[u:]
	return k
}

// purge removes the items match selects (all when match is nil; nothing
// on a nil memo).
//
// The generation moves on first, which ends every stamp handed out
// before (holds), so a decision a connection keeps is not served after the
// purge returns. The items that survive are known good in the new
// generation too (the purge is not about them), so they are replaced by
// copies that carry it, and connections can keep them again. A slot
// changed under the scan (an insert, another purge) is looked at again.
func (t *topicMemo) purge(match func(*memoKey) bool) {
	if t == nil {
		return
	}
	gen := t.gen.Add(1)
	for i := range t.slots {
		for {
			it := t.slots[i].Load()
			if it == nil {
				break
			}
			var next *memoItem
			if match != nil && !match(&it.key) {
				if it.gen >= gen {
					break // inserted, or kept by a later purge, since this one began
				}
				cp := *it
				cp.gen = gen
				next = &cp
			}
			if t.slots[i].CompareAndSwap(it, next) {
				break
			}
		}
	}
}

// close empties the memo for good.
func (t *topicMemo) close() {
	t.off.Store(true)
	t.purge(nil)
	t.clock.halt()
}

// The memo's clock ticks every memoTick and runs memoLead ahead; it goes
// to sleep after memoIdle without a decision served.
const (
	memoTick = 10 * time.Millisecond
	memoLead = 50 * time.Millisecond
	memoIdle = time.Second
)

// asleep is the clock's time while it sleeps: later than every expiry, so
// every lookup misses and goes the cache's way, whose insert wakes it.
const asleep = math.MaxInt64

// coarseClock is the time the memo compares expiries with. time.Now costs
// about as much as the rest of a memo hit (two clock reads), and a hit is
// made twice per delivered message; instead a goroutine stores the time
// every memoTick, and a lookup loads it. The stored time runs memoLead
// ahead, so the memo takes an entry for expired a little early and never
// late, unless that goroutine is held up for longer than memoLead -
// memoTick. A lookup the memo refuses falls through to the cache, which
// reads the exact time, so every TTL is kept as the cache keeps it; only
// the last memoLead of an entry's life costs cache lookups.
//
// The clock runs from the memo's first insert (before it, there is
// nothing to look up) to close, so a plugin that is never used, or whose
// New failed after building the memo, starts no goroutine. It sleeps when
// no decision was served for memoIdle, so an idle broker is not woken 100
// times a second per plugin: asleep, it reads as asleep, every lookup
// misses, and the cache hit that follows inserts again, which wakes it.
type coarseClock struct {
	_       cpu.CacheLinePad // ns is read by every lookup: keep writes to neighbours off its line
	ns      atomic.Int64     // unix nanoseconds, memoLead ahead; 0 before start, asleep while asleep
	_       cpu.CacheLinePad
	served  func() uint64 // decisions served so far; nil: never sleep
	running atomic.Bool
	mu      sync.Mutex // serialises start, sleep and halt
	halted  bool
	stop    chan struct{}
	done    chan struct{}
}

// read is the stored time, in Unix nanoseconds, memoLead ahead.
func (c *coarseClock) read() int64 { return c.ns.Load() }

// set stores the system time, memoLead ahead.
func (c *coarseClock) set() { c.ns.Store(time.Now().Add(memoLead).UnixNano()) }

// start makes the clock run unless it runs already or was halted.
func (c *coarseClock) start() {
	if c.running.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running.Load() || c.halted {
		return
	}
	c.set()
	stop, done := make(chan struct{}), make(chan struct{})
	c.stop, c.done = stop, done
	c.running.Store(true)
	go c.run(stop, done)
}

func (c *coarseClock) run(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(memoTick)
	defer tick.Stop()
	var ticks int
	var served uint64
	if c.served != nil {
		served = c.served()
	}
	for {
		select {
		case <-tick.C:
			c.set()
			if ticks++; c.served == nil || ticks < int(memoIdle/memoTick) {
				continue
			}
			ticks = 0
			if n := c.served(); n != served {
				served = n
				continue
			}
			if c.sleep() {
				return
			}
		case <-stop:
			return
		}
	}
}

// sleep stops the running clock unless halt is stopping it already, and
// reports whether it did.
func (c *coarseClock) sleep() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.halted {
		return false // halt closes stop and waits for run to see it
	}
	c.ns.Store(asleep)
	c.running.Store(false)
	return true
}

// halt stops the clock for good and waits for its goroutine to end.
func (c *coarseClock) halt() {
	c.mu.Lock()
	c.halted = true
	running := c.running.Load()
	if running {
		close(c.stop)
	}
	c.mu.Unlock()
	if running {
		<-c.done
	}
}

// entries is the number of items, expired ones included (for tests).
func (t *topicMemo) entries() int {
	n := 0
	for i := range t.slots {
		if t.slots[i].Load() != nil {
			n++
		}
	}
	return n
}
