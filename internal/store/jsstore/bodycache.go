package jsstore

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// bodyCache keeps body records this store wrote or read, by id, up to a
// number of bytes, the least recently used going first. A page of a
// backlog of shared messages then costs no request for the bodies when
// this node wrote them, or when another session read them before: the
// sessions resuming one backlog fetch each record once between them.
//
// Serving a body from memory changes nothing a session receives. A body
// record's id is new when written and the record never changes, so what
// the cache holds for an id is what the stream holds, or held. A read
// asks for an id only because a chunk it read names it, and it reads the
// chunks after the head that says which entries are live; the body comes
// from the same commit as the chunk. The one difference is a body purged
// between the read of the chunk and that of the body (its entries were
// acknowledged, or the chunk rewritten with its messages inline, after
// the head was read): the stream then says it is missing and Scan starts
// over, while the cache hands back the message the chunk named, as a Scan
// a moment earlier would have returned it, with the head it read. A Scan
// already returns entries acknowledged after its head was read whenever
// the purge comes after the body's read.
//
// Entries are dropped when this store purges the body records below
// them (dropBelow); records another node purges stay until the bound
// pushes them out, asked for by no chunk.
type bodyCache struct {
	max     int64 // bytes
	metrics *Metrics

	mu    sync.Mutex
	bytes int64
	byRec map[string]*list.Element // of *cachedBody
	lru   list.List                // most recently used first
}

type cachedBody struct {
	rec  string
	seq  uint64 // the record's stream sequence
	data []byte // the record as stored (never changed)
}

// cachedOverhead is about what an entry costs beyond its record's bytes
// (list element, map entry, id): counted so that many small records
// cannot take far more memory than the bound says.
const cachedOverhead = 128

// newBodyCache returns a cache of max bytes; nil (which caches nothing)
// for max <= 0.
func newBodyCache(max int64, m *Metrics) *bodyCache {
	if max <= 0 {
		return nil
	}
	return &bodyCache{max: max, metrics: m, byRec: map[string]*list.Element{}}
}

func (c *cachedBody) size() int64 { return int64(len(c.data)+len(c.rec)) + cachedOverhead }

// get returns body record rec if held, counting the hit or the miss.
func (c *bodyCache) get(rec string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	el, ok := c.byRec[rec]
	var data []byte
	if ok {
		c.lru.MoveToFront(el)
		data = el.Value.(*cachedBody).data
	}
	c.mu.Unlock()
	if ok {
		c.metrics.inc(func(m *Metrics) prometheus.Counter { return m.bodyHits })
	} else {
		c.metrics.inc(func(m *Metrics) prometheus.Counter { return m.bodyMisses })
	}
	return data, ok
}

// put keeps body record rec, stored at stream sequence seq, evicting the
// least recently used records (counted) while over the bound. A record
// larger than the whole bound is not kept. data must not change after.
func (c *bodyCache) put(rec string, seq uint64, data []byte) {
	if c == nil {
		return
	}
	e := &cachedBody{rec: rec, seq: seq, data: data}
	if e.size() > c.max {
		return
	}
	evicted := 0
	c.mu.Lock()
	if _, ok := c.byRec[rec]; ok {
		c.mu.Unlock()
		return // the same record: it never changes
	}
	c.byRec[rec] = c.lru.PushFront(e)
	c.bytes += e.size()
	for c.bytes > c.max {
		c.remove(c.lru.Back())
		evicted++
	}
	c.mu.Unlock()
	if evicted > 0 && c.metrics != nil {
		c.metrics.bodyEvictions.Add(float64(evicted))
	}
}

// remove drops el. Caller holds c.mu.
func (c *bodyCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cachedBody)
	delete(c.byRec, e.rec)
	c.bytes -= e.size()
}

// dropBelow forgets the records stored before stream sequence seq: this
// store has just purged them from the stream.
func (c *bodyCache) dropBelow(seq uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cachedBody).seq < seq {
			c.remove(el)
		}
		el = next
	}
}

// held is how many records and bytes the cache holds (for tests).
func (c *bodyCache) held() (int, int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byRec), c.bytes
}
