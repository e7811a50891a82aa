// Package striped is a Prometheus counter for events that many cores
// record at once, such as the topic checks made for every delivered
// message. A prometheus.Counter is one atomic word: each increment from
// another core first takes the word's cache line away from the core that
// wrote it last, and on the broker's delivery path that transfer costs
// more than the work being counted. A Counter here keeps its count in
// shards, each on a cache line of its own, and sums them when scraped: an
// increment writes a line that usually no other core is writing, and the
// value exported is still exact. Int is the same for a signed count that
// is not exported.
package striped

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/cpu"
)

// shard is one part of a count. The padding keeps the counts of two shards
// at least a cache line apart, so no two share a line however the slice is
// aligned.
type shard struct {
	n atomic.Uint64
	_ cpu.CacheLinePad
}

// Counter is a monotonic count, exported as a Prometheus counter. Build it
// with CounterVec.WithLabelValues, or NewCounter when it stands alone. It is
// safe for concurrent use.
type Counter struct {
	shards  []shard
	shift   uint8 // 64 - log2(len(shards)): a hash's top bits index the shards
	desc    *prometheus.Desc
	lvs     []string
	created time.Time
}

// shardCount is how many shards a Counter gets: 4 per P, so that
// goroutines running at the same time seldom pick the same one, rounded up
// to a power of two and at most 64, so a counter stays under 5 KiB.
func shardCount() int {
	n := min(4*runtime.GOMAXPROCS(0), 64)
	return 1 << bits.Len(uint(n-1))
}

func newCounter(desc *prometheus.Desc, lvs []string) *Counter {
	n := shardCount()
	return &Counter{shards: make([]shard, n), shift: uint8(64 - bits.Len(uint(n-1))),
		desc: desc, lvs: lvs, created: time.Now()}
}

// NewCounter returns a counter without labels; register it as any
// prometheus.Collector.
func NewCounter(opts prometheus.CounterOpts) *Counter {
	return newCounter(prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name),
		opts.Help, nil, opts.ConstLabels), nil)
}

// Inc adds 1.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) {
	c.shards[slot(c.shift)].n.Add(n)
}

// slot picks the calling goroutine's shard from the address of a variable
// on its stack. Goroutines have stacks of their own, so two that run at
// the same time on different cores seldom share a shard, and a goroutine
// keeps to its shard (until its stack moves) whichever client or topic it
// counts for, so the line stays in its core's cache. Keying on the client
// would not do: a receive check counts for the subscriber on the
// publisher's goroutine, and many publishers feed one subscriber. Any
// shard gives the right sum; the choice only spreads the writes. The low
// 11 bits are dropped so that nearby call depths in one goroutine (the
// publish and the receive check) share a shard; the multiply spreads
// neighbouring stacks apart.
func slot(shift uint8) uint64 {
	var here byte
	return (uint64(uintptr(unsafe.Pointer(&here))>>11) * 0x9e3779b97f4a7c15) >> shift
}

// Int is a signed count that many goroutines change at once and that is
// seldom read, striped as a Counter is but not exported: the plugin
// framework counts with it the calls holding a set of plugins, two
// changes per broker event.
type Int struct {
	shards []shard
	shift  uint8
}

// NewInt returns a zero Int.
func NewInt() *Int {
	n := shardCount()
	return &Int{shards: make([]shard, n), shift: uint8(64 - bits.Len(uint(n-1)))}
}

// Add adds n (which may be negative). A decrement need not land on the
// shard its increment did: only the sum means anything.
func (i *Int) Add(n int64) { i.shards[slot(i.shift)].n.Add(uint64(n)) }

// Sum is the total. Read while others change it, it is exact only about
// changes that happened before the call; a caller that changed it itself
// last sees every change made before its own.
func (i *Int) Sum() int64 {
	var sum uint64
	for j := range i.shards {
		sum += i.shards[j].n.Load()
	}
	return int64(sum)
}

// Value is the count: the sum of the shards. Increments that race it are
// either in or not, as with one atomic word.
func (c *Counter) Value() uint64 {
	var sum uint64
	for i := range c.shards {
		sum += c.shards[i].n.Load()
	}
	return sum
}

// Desc implements prometheus.Metric.
func (c *Counter) Desc() *prometheus.Desc { return c.desc }

// Write implements prometheus.Metric: a counter with its created
// timestamp, as a prometheus.Counter writes it.
func (c *Counter) Write(out *dto.Metric) error {
	m, err := prometheus.NewConstMetricWithCreatedTimestamp(c.desc, prometheus.CounterValue, float64(c.Value()), c.created, c.lvs...)
	if err != nil {
		return err
	}
	return m.Write(out)
}

// Describe and Collect make a Counter from NewCounter a
// prometheus.Collector.
func (c *Counter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *Counter) Collect(ch chan<- prometheus.Metric) { ch <- c }

// CounterVec is a family of Counters partitioned by labels, a drop-in for
// prometheus.CounterVec: the same name, help, labels and type on the wire,
// and the same MetricVec methods (DeletePartialMatch, Reset, ...).
type CounterVec struct {
	*prometheus.MetricVec
}

// NewCounterVec is prometheus.NewCounterVec for striped counters.
func NewCounterVec(opts prometheus.CounterOpts, labels []string) *CounterVec {
	desc := prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name),
		opts.Help, labels, opts.ConstLabels)
	return &CounterVec{prometheus.NewMetricVec(desc, func(lvs ...string) prometheus.Metric {
		return newCounter(desc, lvs)
	})}
}

// WithLabelValues returns the counter for the label values, creating it
// on first use. Like prometheus.CounterVec's, it panics on a wrong number
// of values; look a counter up once, not per increment.
func (v *CounterVec) WithLabelValues(lvs ...string) *Counter {
	m, err := v.GetMetricWithLabelValues(lvs...)
	if err != nil {
		panic(err)
	}
	return m.(*Counter)
}
