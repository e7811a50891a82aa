package topics

import (
	"sync"
	"sync/atomic"
)

// Tree is a subscription trie: topic filters in, matching subscriptions out.
// K identifies a subscriber (a session or client id), V is whatever the
// broker needs per subscription (QoS, options, subscription identifier).
//
// Each filter level is one node. A node's literal children are looked up by
// level (a short slice while there are few, a map beyond that); its '+' and
// '#' children have their own pointers, so matching a topic level costs one
// lookup plus two pointer checks, however many siblings there are.
//
// Tree is safe for concurrent use. Subscribe and Unsubscribe take a write
// lock; Match takes a read lock, so publishes proceed in parallel and only
// wait on the (comparatively rare) subscription changes.
//
// Create one with [NewTree]; it must not be copied after first use.
type Tree[K comparable, V any] struct {
	mu    sync.RWMutex
	gen   atomic.Uint64 // moves on every Subscribe and Unsubscribe (Gen)
	root  node[K, V]    // the level above the first: never pruned, not counted
	subs  int           // subscriptions, for Len
	nodes int           // nodes below root, so tests can prove pruning works
}

// indexThreshold is the number of subscriptions on one filter above which a
// node keeps a key-to-position map. Below it a linear scan of the entries is
// as fast as hashing and saves a map (a few hundred bytes) on the many
// nodes that hold one or two subscriptions; above it, replace and remove
// stay O(1) however many clients share the filter.
const indexThreshold = 16

// entry is one subscription on a node.
type entry[K comparable, V any] struct {
	key K
	val V
}

// node is one filter level. The subscriptions of the filter that ends here
// are a plain slice, so Match walks them without hashing or pointer chasing.
type node[K comparable, V any] struct {
	children children[node[K, V]] // literal next levels
	plus     *node[K, V]          // the '+' next level
	hash     *node[K, V]          // the '#' next level
	subs     []entry[K, V]
	index    map[K]int // key -> position in subs; only past indexThreshold
}

// NewTree returns an empty subscription tree.
func NewTree[K comparable, V any]() *Tree[K, V] {
	return &Tree[K, V]{}
}

// Subscribe adds key's subscription to filter, or replaces its value. isNew
// is false when it replaced one. The filter is assumed valid (the broker
// validates first). A key has at most one subscription per filter.
func (t *Tree[K, V]) Subscribe(filter string, key K, val V) (isNew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.gen.Add(1)
	n := &t.root
	for pos := 0; pos <= len(filter); {
		end := levelEnd(filter, pos)
		n = t.childOrNew(n, filter[pos:end])
		pos = end + 1
	}
	// [MQTT-3.8.4-3] a subscription whose filter is identical to one the
	// client already holds replaces it.
	if !n.put(key, val) {
		return false
	}
	t.subs++
	return true
}

// childOrNew returns n's child for level, creating it if needed.
func (t *Tree[K, V]) childOrNew(n *node[K, V], level string) *node[K, V] {
	switch level {
	case "+":
		if n.plus == nil {
			n.plus = &node[K, V]{}
			t.nodes++
		}
		return n.plus
	case "#":
		if n.hash == nil {
			n.hash = &node[K, V]{}
			t.nodes++
		}
		return n.hash
	}
	if c := n.children.get(level); c != nil {
		return c
	}
	c := &node[K, V]{}
	n.children.add(level, c)
	t.nodes++
	return c
}

// child returns n's child for level, or nil.
func (n *node[K, V]) child(level string) *node[K, V] {
	switch level {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children.get(level)
}

// unlink drops n's child for level.
func (n *node[K, V]) unlink(level string) {
	switch level {
	case "+":
		n.plus = nil
	case "#":
		n.hash = nil
	default:
		n.children.remove(level)
	}
}

// empty reports whether n holds nothing and can be pruned.
func (n *node[K, V]) empty() bool {
	return len(n.subs) == 0 && n.children.len() == 0 && n.plus == nil && n.hash == nil
}

// Unsubscribe removes key's subscription to filter; empty nodes are pruned
// so memory does not grow with churn. existed is false when key held no
// subscription to filter.
func (t *Tree[K, V]) Unsubscribe(filter string, key K) (existed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.gen.Add(1)
	if !t.unsubscribe(&t.root, filter, 0, key) {
		return false
	}
	t.subs--
	return true
}

// unsubscribe removes key from the node that filter[pos:] leads to from n,
// and on the way back up prunes every node the removal left empty. It
// recurses once per level rather than keeping parent pointers, which would
// cost every node a pointer and a level string.
func (t *Tree[K, V]) unsubscribe(n *node[K, V], filter string, pos int, key K) bool {
	if pos > len(filter) {
		return n.remove(key)
	}
	end := levelEnd(filter, pos)
	level := filter[pos:end]
	c := n.child(level)
	if c == nil || !t.unsubscribe(c, filter, end+1, key) {
		return false
	}
	if c.empty() {
		n.unlink(level)
		t.nodes--
	}
	return true
}

// Gen is a number that changes whenever a subscription is added, replaced
// or removed: what Match found for a topic still holds while Gen has not
// moved since before that Match began.
func (t *Tree[K, V]) Gen() uint64 { return t.gen.Load() }

// Match calls fn for every subscription whose filter matches topic name
// topic. It holds a read lock while calling fn: fn must not call back into
// the tree (a write would deadlock; a nested Match can deadlock behind a
// waiting writer). fn is called once per matching subscription, so a client
// whose filters overlap is called once per filter; the broker decides how to
// merge them [MQTT-3.3.5-1]. The order of calls is unspecified.
//
// Match allocates nothing: it walks topic by index and looks children up by
// substring.
func (t *Tree[K, V]) Match(topic string, fn func(key K, val V)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if dollarTopic(topic) {
		// [MQTT-4.7.2-1] wildcards at the first level don't match $
		// topics: only the root's literal child may lead anywhere.
		end := levelEnd(topic, 0)
		if c := t.root.children.get(topic[:end]); c != nil {
			c.match(topic, end+1, fn)
		}
		return
	}
	t.root.match(topic, 0, fn)
}

// match calls fn for the subscriptions below n that match the topic levels
// from pos on (pos > len(topic): none left). Every node is reached by at
// most one path for a given topic, so no subscription is reported twice. It
// recurses only where both a literal and a '+' child match, and loops
// otherwise, so a plain topic costs no call depth.
func (n *node[K, V]) match(topic string, pos int, fn func(K, V)) {
	for {
		if n.hash != nil {
			// '#' matches the parent level and any number of child levels,
			// so it matches here whatever is left of the topic.
			n.hash.emit(fn)
		}
		if pos > len(topic) {
			n.emit(fn)
			return
		}
		end := levelEnd(topic, pos)
		// A topic level of "+" or "#" (an invalid topic name) can never
		// find a literal child: wildcard levels live in plus and hash.
		lit := n.children.get(topic[pos:end])
		next := n.plus // [MQTT-4.7.1-3] '+' matches exactly one level
		pos = end + 1
		switch {
		case lit != nil && next != nil:
			lit.match(topic, pos, fn)
		case lit != nil:
			next = lit
		case next == nil:
			return
		}
		n = next
	}
}

// emit calls fn for each subscription on n.
func (n *node[K, V]) emit(fn func(K, V)) {
	for i := range n.subs {
		fn(n.subs[i].key, n.subs[i].val)
	}
}

// find returns the position of key in n.subs.
func (n *node[K, V]) find(key K) (int, bool) {
	if n.index != nil {
		i, ok := n.index[key]
		return i, ok
	}
	for i := range n.subs {
		if n.subs[i].key == key {
			return i, true
		}
	}
	return 0, false
}

// put adds or replaces key's subscription and reports whether it was added.
func (n *node[K, V]) put(key K, val V) bool {
	if i, ok := n.find(key); ok {
		n.subs[i].val = val
		return false
	}
	n.subs = append(n.subs, entry[K, V]{key, val})
	switch {
	case n.index != nil:
		n.index[key] = len(n.subs) - 1
	case len(n.subs) > indexThreshold:
		n.reindex()
	}
	return true
}

// remove deletes key's subscription by moving the last entry into its place
// (order does not matter, constant time matters) and reports whether it
// was there.
func (n *node[K, V]) remove(key K) bool {
	i, ok := n.find(key)
	if !ok {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		if n.index != nil {
			n.index[n.subs[i].key] = i
		}
	}
	n.subs[last] = entry[K, V]{} // let the GC have the key and value
	n.subs = n.subs[:last]
	if n.index != nil {
		delete(n.index, key)
	}
	switch {
	case last == 0:
		n.subs, n.index = nil, nil
	case cap(n.subs) > 4*indexThreshold && last < cap(n.subs)/4:
		// A filter that once had thousands of subscribers and now has a
		// few should not keep their slice and map: copy down (amortised
		// O(1), since it takes cap/4 removals to get here).
		n.subs = append([]entry[K, V](nil), n.subs...)
		n.reindex()
	case n.index != nil && last <= indexThreshold/2:
		// Hysteresis: drop the map well below the threshold that built it,
		// so a count hovering at the threshold does not rebuild it each time.
		n.index = nil
	}
	return true
}

// reindex rebuilds n.index from n.subs, or drops it if n.subs is small.
func (n *node[K, V]) reindex() {
	if len(n.subs) <= indexThreshold {
		n.index = nil
		return
	}
	n.index = make(map[K]int, len(n.subs))
	for i := range n.subs {
		n.index[n.subs[i].key] = i
	}
}

// Len is the number of subscriptions.
func (t *Tree[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.subs
}

// nodeCount is the number of nodes below the root; tests use it to check
// that unsubscribing prunes everything it can.
func (t *Tree[K, V]) nodeCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.nodes
}
