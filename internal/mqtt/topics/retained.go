package topics

import (
	"strings"
	"sync"
)

// Retained holds the retained message per topic name: the last message
// published with the RETAIN flag on each topic, which every new matching
// subscription receives [MQTT-3.3.1-6].
//
// It is a trie of topic names (the mirror of [Tree], which is a trie of
// filters), so a new subscription's filter walks only the branches it can
// match instead of testing every retained topic.
//
// Retained is safe for concurrent use. Match gathers its results under a
// read lock and calls fn after releasing it, so fn may take its time (an
// authorisation call for each topic, a write to a slow client) without
// holding up Set and Delete.
//
// Create one with [NewRetained]; it must not be copied after first use.
type Retained[V any] struct {
	mu    sync.RWMutex
	root  rnode[V] // the level above the first: never holds a message
	count int      // retained messages, for Len
	bytes int      // sum of size over the retained values, for Usage
	nodes int      // nodes below root, so tests can prove pruning works
	size  func(topic string, v V) int
}

// rnode is one topic level of the retained store.
type rnode[V any] struct {
	children children[rnode[V]] // next levels
	topic    string             // the full topic name, when set
	val      V
	set      bool // a message is retained on exactly this topic
}

// retainedHit is one Match result, gathered under the lock.
type retainedHit[V any] struct {
	topic string
	val   V
}

// NewRetained returns an empty retained-message store.
func NewRetained[V any]() *Retained[V] {
	return &Retained[V]{}
}

// NewRetainedSized returns an empty retained-message store that keeps the
// total of size over its messages, reported by Usage, so a bound on the
// bytes retained costs no walk of the trie.
func NewRetainedSized[V any](size func(topic string, v V) int) *Retained[V] {
	return &Retained[V]{size: size}
}

// Set retains v on topic name topic [MQTT-3.3.1-5], replacing any message
// retained there. An empty payload means "delete" [MQTT-3.3.1-10] and must
// not be stored [MQTT-3.3.1-11]; that is the broker's call to Delete, since
// Set cannot see inside V.
func (r *Retained[V]) Set(topic string, v V) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	for pos := 0; pos <= len(topic); {
		end := levelEnd(topic, pos)
		level := topic[pos:end]
		c := n.children.get(level)
		if c == nil {
			c = &rnode[V]{}
			n.children.add(level, c)
			r.nodes++
		}
		n = c
		pos = end + 1
	}
	if !n.set {
		n.set = true
		// Clone: topic may point into a packet buffer.
		n.topic = strings.Clone(topic)
		r.count++
	} else {
		r.bytes -= r.sizeOf(n)
	}
	n.val = v
	r.bytes += r.sizeOf(n)
}

// sizeOf is n's share of bytes: 0 without a size function.
func (r *Retained[V]) sizeOf(n *rnode[V]) int {
	if r.size == nil {
		return 0
	}
	return r.size(n.topic, n.val)
}

// Usage is the number of retained messages and, for a store made by
// [NewRetainedSized], the sum of their sizes (0 otherwise).
func (r *Retained[V]) Usage() (count, bytes int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count, r.bytes
}

// Delete removes the message retained on topic and reports whether there
// was one. Nodes left empty are pruned.
func (r *Retained[V]) Delete(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.delete(&r.root, topic, 0) {
		return false
	}
	r.count--
	return true
}

// delete clears the message topic[pos:] leads to from n, pruning empty
// nodes on the way back up.
func (r *Retained[V]) delete(n *rnode[V], topic string, pos int) bool {
	if pos > len(topic) {
		if !n.set {
			return false
		}
		r.bytes -= r.sizeOf(n)
		var zero V
		n.set, n.topic, n.val = false, "", zero
		return true
	}
	end := levelEnd(topic, pos)
	level := topic[pos:end]
	c := n.children.get(level)
	if c == nil || !r.delete(c, topic, end+1) {
		return false
	}
	if !c.set && c.children.len() == 0 {
		n.children.remove(level)
		r.nodes--
	}
	return true
}

// Get returns the message retained on topic name topic.
func (r *Retained[V]) Get(topic string) (V, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := &r.root
	for pos := 0; pos <= len(topic); {
		end := levelEnd(topic, pos)
		if n = n.children.get(topic[pos:end]); n == nil {
			var zero V
			return zero, false
		}
		pos = end + 1
	}
	return n.val, n.set
}

// Match calls fn for every retained topic that topic filter filter matches,
// with the same rules as [Tree.Match], $ topics included [MQTT-4.7.2-1].
//
// The results are a snapshot taken under a read lock; fn is called after
// the lock is released, so fn may do slow work and may even call back into
// r. A Set or Delete that races with Match may or may not be seen. The
// order of calls is unspecified.
func (r *Retained[V]) Match(filter string, fn func(topic string, v V)) {
	r.mu.RLock()
	hits := r.root.collect(filter, 0, nil, true)
	r.mu.RUnlock()
	for i := range hits {
		fn(hits[i].topic, hits[i].val)
	}
}

// collect appends the retained messages below n that filter[pos:] matches
// (pos > len(filter): no filter levels left, so n itself). atRoot is true
// for the root, where wildcards must skip '$' topics.
func (n *rnode[V]) collect(filter string, pos int, hits []retainedHit[V], atRoot bool) []retainedHit[V] {
	if pos > len(filter) {
		if n.set {
			hits = append(hits, retainedHit[V]{n.topic, n.val})
		}
		return hits
	}
	end := levelEnd(filter, pos)
	switch level := filter[pos:end]; level {
	case "#":
		// [MQTT-4.7.1-2] '#' must be last; if it is not, match nothing,
		// as Tree and MatchFilter do.
		if end != len(filter) {
			return hits
		}
		// '#' matches the parent level and any number of child levels:
		// n itself (the root never holds a message) and all below it.
		if n.set {
			hits = append(hits, retainedHit[V]{n.topic, n.val})
		}
		for l, c := range n.children.all() {
			if atRoot && dollarTopic(l) {
				continue // [MQTT-4.7.2-1]
			}
			hits = c.subtree(hits)
		}
	case "+":
		// [MQTT-4.7.1-3] '+' matches exactly one level: every child.
		for l, c := range n.children.all() {
			if atRoot && dollarTopic(l) {
				continue // [MQTT-4.7.2-1]
			}
			hits = c.collect(filter, end+1, hits, false)
		}
	default:
		if c := n.children.get(level); c != nil {
			hits = c.collect(filter, end+1, hits, false)
		}
	}
	return hits
}

// subtree appends n's message, if any, and every message below n.
func (n *rnode[V]) subtree(hits []retainedHit[V]) []retainedHit[V] {
	if n.set {
		hits = append(hits, retainedHit[V]{n.topic, n.val})
	}
	for _, c := range n.children.all() {
		hits = c.subtree(hits)
	}
	return hits
}

// Len is the number of retained messages.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}

// nodeCount is the number of nodes below the root, for pruning tests.
func (r *Retained[V]) nodeCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.nodes
}
