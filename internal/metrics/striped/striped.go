// Package striped is a Prometheus counter for events that many cores
// record at once, such as the topic checks made for every delivered
// message. A prometheus.Counter is one atomic word: each increment from
// another core first takes the word's cache line away from the core that
// wrote it last, and on the broker's delivery path that transfer costs
// more than the work being counted. A Counter here keeps its count in
// shards, each on a cache line of its own, and sums them when scraped: an
// increment writes a line that usually no other core is writing, and the
// value exported is still exact. Refs uses the same striping to count the
// holders of a shared resource.
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

// Inc adds 1; see Add.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n to the calling goroutine's shard, which goroutines running
// on other cores seldom share, so the increment stays on a cache line the
// core already owns.
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

// Refs counts the holders of something shared, such as a set of plugins
// that may be closed only once no call uses it. Hold and Release are
// striped as a Counter's Add is, since every broker event takes and gives
// back a hold on every core at once; Held, the rare question "does anyone
// still hold it?", reads every shard.
//
// A shard keeps two counts that only grow, holds and releases, instead of
// one that goes up and down: a Release may run on another goroutine than
// its Hold, or at another stack depth, and so land on another shard. With
// one signed count per shard, a Held racing a hold on a shard it had
// already read and the matching release on a shard it had not would read
// that release without its hold, and could see zero while another holder
// was inside. See Held for why two growing counts cannot.
type Refs struct {
	shards []refShard
	shift  uint8
}

// refShard is one stripe of a Refs, on a cache line of its own.
type refShard struct {
	holds, releases atomic.Uint64
	_               cpu.CacheLinePad
}

// NewRefs returns a Refs that nobody holds.
func NewRefs() *Refs {
	n := shardCount()
	return &Refs{shards: make([]refShard, n), shift: uint8(64 - bits.Len(uint(n-1)))}
}

// Hold counts one more holder.
func (r *Refs) Hold() { r.shards[slot(r.shift)].holds.Add(1) }

// Release counts one holder gone; call it once per Hold, from any
// goroutine.
func (r *Refs) Release() { r.shards[slot(r.shift)].releases.Add(1) }

// Held is how many hold now: exact when nothing races it, and never less
// than the holders that were holding all through the call, so it is never
// zero while one of them is.
//
// Why: it reads every shard's releases first and every shard's holds
// after, and both only grow. Let T be when the releases are read. Every
// release counted was made before T, so its hold was too, and the holds,
// read after T, count that hold. The releases read are at most those made
// by T and the holds read at least those made by T, so Held is at least
// the number holding at T. A holder inside for the whole call is one of
// them. (Counts wrap at 2^64; their difference is still exact.)
func (r *Refs) Held() int64 { return r.held(nil) }

// held is Held, calling between (if not nil) before each shard read, so a
// test can interleave holds and releases at every point of the reads.
func (r *Refs) held(between func(releases bool, shard int)) int64 {
	var holds, releases uint64
	for i := range r.shards {
		if between != nil {
			between(true, i)
		}
		releases += r.shards[i].releases.Load()
	}
	for i := range r.shards {
		if between != nil {
			between(false, i)
		}
		holds += r.shards[i].holds.Load()
	}
	return int64(holds - releases)
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

// Describe sends the counter's one descriptor. With Collect it makes a
// Counter from NewCounter a prometheus.Collector, so it can be registered
// on its own.
func (c *Counter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends the counter itself (see Describe); its Write sums the
// stripes at scrape time.
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
