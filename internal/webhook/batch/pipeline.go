// Package batch is the event delivery pipeline of an HTTP plugin: it queues
// the broker's events without ever blocking the broker, groups them into
// POST /events bodies (by count, size and a short linger), keeps each
// client's events in order while different clients go in parallel, retries
// what the plugin may accept later, and drains within a deadline at shutdown
// (docs/design.md §3.3, §4). Given a spool it is durable instead: what it
// would drop goes to disk and is delivered from there, at least once
// (durable.go). How a body reaches the plugin (URL, headers, signing)
// is the Sender's business, not this package's.
package batch

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/spool"
)

// Options bound and pace a Pipeline. Zero values take the defaults in
// brackets.
type Options struct {
	QueueSize  int           // events queued at most, all lanes together [10000]
	QueueBytes int           // bytes of encoded events queued at most, all lanes together [64 MiB]
	Lanes      int           // batches in flight at once, one per lane [4]
	MaxEvents  int           // events per POST [1000]
	MaxBytes   int           // bytes per POST body; a larger single event goes alone [1 MiB]
	Linger     time.Duration // after a batch's first event, how long to wait for more; negative: never wait [50ms]
	Retries    int           // attempts after the first for a retryable failure; negative: none [5]
	Backoff    time.Duration // first retry's backoff ceiling, doubling per retry, full jitter [100ms]
	MaxBackoff time.Duration // cap on any wait between attempts, Retry-After included [10s]
	Logger     *slog.Logger  // where rate-limited failure reports go; give it the plugin alias [slog.Default()]
	// Spool, when set, makes delivery durable (see durable.go): events
	// that would be dropped for a full queue, a failing plugin or a
	// shutdown are spooled and delivered from there, at least once. The
	// pipeline does not close it.
	Spool *spool.Spool
	// Gate, with a Spool, holds the spool back until it is closed: nothing
	// is delivered from it, and lanes that spool keep spooling, so events
	// wait on disk (in order) until their owner knows which it wants. nil
	// is open.
	Gate <-chan struct{}
	// Keep, with a Spool, is asked about each record before it is sent
	// from the spool, once Gate is open: false releases it unsent (see
	// Stats.Unwanted). nil keeps all.
	Keep func(json []byte) bool
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueSize, 10000)
	def(&o.QueueBytes, 64<<20)
	def(&o.Lanes, 4)
	def(&o.MaxEvents, 1000)
	def(&o.MaxBytes, 1<<20)
	if o.Retries == 0 {
		o.Retries = 5
	}
	o.Retries = max(o.Retries, 0)
	if o.Linger == 0 {
		o.Linger = 50 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	o.MaxBackoff = max(o.MaxBackoff, o.Backoff)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Encoder appends one event's JSON object to dst. On error the event is
// dropped and counted; whatever it appended is discarded.
type Encoder func(dst []byte, e *hooks.Event) ([]byte, error)

// Sender POSTs body, `{"events":[...]}` holding n events, to the plugin. It
// returns nil when the plugin took the batch, a *RetryableError when trying
// again may help (see Classify), and any other error to drop the batch. It
// must return soon after ctx is done (Close waits for it), and must not
// touch body once it returns: the lane reuses it for the next batch. Note
// that net/http may still be writing a request body after a cancelled or
// timed-out Do returns; a Sender on net/http waits for the body's Close (or
// sends a copy) before returning.
type Sender func(ctx context.Context, body []byte, n int) error

// Stats is a snapshot of a Pipeline's counters.
type Stats struct {
	Queued  int    // events waiting in the lanes' queues
	Batches uint64 // POSTs the plugin accepted
	Sent    uint64 // events in those POSTs
	Retried uint64 // POSTs sent again after a retryable failure
	Dropped Drops  // events given up, by reason

	Spooled   uint64 // events written to the spool and fsynced (durable)
	FromSpool uint64 // events the plugin accepted from the spool (also in Sent)
	Unwanted  uint64 // events released from the spool unsent: Options.Keep said no
}

// Drops counts undelivered events by why they were given up.
type Drops struct {
	Overflow uint64 // pushed out of a full queue (QueueSize or QueueBytes), oldest first
	Failed   uint64 // in a batch the plugin refused, or that ran out of retries
	Encode   uint64 // the Encoder failed on them
	Shutdown uint64 // pushed after Close, or still undelivered when Close's deadline passed
	Spool    uint64 // dropped from the spool, oldest first, to stay within its byte bound
}

// Pipeline delivers events to one plugin. Push may be called from any
// goroutine; Close must be called to stop its goroutines.
type Pipeline struct {
	opts  Options
	enc   Encoder
	send  Sender
	lanes []*lane
	seed  maphash.Seed

	// limit is QueueSize and QueueBytes: what the lanes hold together.
	// Each lane is sure of limit/Lanes; borrowers counts the lanes
	// holding more, the only ones that can make the whole full.
	limit     hooks.QueueLimit
	borrowers atomic.Int32
	reclaimMu sync.Mutex // one reclaim at a time, so none takes more than was over

	// stop ends sends and backoff waits once Close's deadline passes;
	// until then Close lets the lanes finish on their own.
	stop    context.Context
	abort   context.CancelFunc
	closing atomic.Bool
	running atomic.Int32
	done    chan struct{} // closed when the last lane has returned
	drained chan struct{} // closed when the spool's drain has returned; nil without a spool

	batches, sent, retried             atomic.Uint64
	overflow, failed, encode, shutdown atomic.Uint64
	spooled, fromSpool, spoolBound     atomic.Uint64
	unwanted                           atomic.Uint64

	rep reporter
}

// New starts a pipeline of opts.Lanes goroutines that deliver events with
// send; Push encodes them with enc.
func New(opts Options, enc Encoder, send Sender) *Pipeline {
	opts = opts.withDefaults()
	p := &Pipeline{
		opts: opts,
		enc:  enc,
		send: send,
		seed: maphash.MakeSeed(),
		done: make(chan struct{}),
		rep:  reporter{log: opts.Logger},
	}
	p.stop, p.abort = context.WithCancel(context.Background())
	p.limit = hooks.QueueLimit{Events: opts.QueueSize, Bytes: opts.QueueBytes}
	share := hooks.QueueLimit{Events: max(opts.QueueSize/opts.Lanes, 1), Bytes: max(opts.QueueBytes/opts.Lanes, 1)}
	p.lanes = make([]*lane, opts.Lanes)
	p.running.Store(int32(opts.Lanes))
	for i := range p.lanes {
		p.lanes[i] = newLane(p, share)
	}
	if sp := opts.Spool; sp != nil {
		clear := sp.Clear() // what a restart left there goes first
		for _, l := range p.lanes {
			l.spooling = !clear
		}
		p.drained = make(chan struct{})
		go p.drain()
	}
	for _, l := range p.lanes {
		go l.run()
	}
	return p
}

// Push encodes e into its lane's next batch and never blocks; e is not
// kept, so it may alias buffers its caller reuses once Push returns. A
// full lane drops its oldest event. All events of one client share a
// lane, so they reach the plugin in the order they were pushed; lifecycle
// events (no client) use lane 0.
func (p *Pipeline) Push(e *hooks.Event) {
	if p.closing.Load() {
		p.shutdown.Add(1)
		return
	}
	if err := p.lanes[p.laneOf(e)].push(e); err != nil {
		p.report(err)
	}
}

// totals is what the lanes together hold, events and bytes, as of each
// lane's last change.
func (p *Pipeline) totals() (n, b int64) {
	for _, l := range p.lanes {
		n += l.nEvents.Load()
		b += l.nBytes.Load()
	}
	return n, b
}

// full reports whether the lanes together hold more than the queue's
// bounds, as of each lane's last change.
func (p *Pipeline) full() bool {
	n, b := p.totals()
	return p.limit.Over(int(n), int(b))
}

// reclaim gives a lane within its share the room it needs back: while the
// lanes together are full, the lane the furthest beyond its share gives
// way. The caller holds no lane's lock.
func (p *Pipeline) reclaim() error {
	p.reclaimMu.Lock()
	defer p.reclaimMu.Unlock()
	var first error
	for {
		// One reading serves both the test and the choice of lane; the
		// test under v's lock reads afresh, as others may have given way.
		n, b := p.totals()
		if !p.limit.Over(int(n), int(b)) {
			break
		}
		v := p.furthestBeyond(n)
		if v == nil {
			return first // nobody borrows: the shares alone pass the bounds (fewer events than lanes)
		}
		v.mu.Lock()
		wake := false
		if v.borrowing && p.full() {
			var err error
			if wake, err = v.giveWay(); first == nil {
				first = err
			}
		}
		v.mu.Unlock()
		if wake {
			v.signal()
		}
	}
	return first
}

// furthestBeyond is the lane holding the most beyond its share, by the
// bound the lanes together pass (events, else bytes), given n, the events
// they hold (totals); nil when no lane is beyond its share.
func (p *Pipeline) furthestBeyond(n int64) *lane {
	byEvents := n > int64(p.limit.Events)
	var v *lane
	var most int64
	for _, l := range p.lanes {
		ln, lb := l.nEvents.Load(), l.nBytes.Load()
		if !l.share.Over(int(ln), int(lb)) {
			continue
		}
		beyond := lb - int64(l.share.Bytes)
		if byEvents {
			beyond = ln - int64(l.share.Events)
		}
		if v == nil || beyond > most {
			v, most = l, beyond
		}
	}
	return v
}

func (p *Pipeline) laneOf(e *hooks.Event) int {
	if e.Client == nil || len(p.lanes) == 1 {
		return 0
	}
	return int(maphash.String(p.seed, e.Client.ClientID) % uint64(len(p.lanes)))
}

// Close stops taking events and delivers what is queued, still batching
// and retrying, until ctx ends; then it abandons the rest (counted as
// shutdown drops) and returns once every lane goroutine has. The error
// says how many events were abandoned. Close may be called more than once.
func (p *Pipeline) Close(ctx context.Context) error {
	if !p.closing.Swap(true) {
		for _, l := range p.lanes {
			l.close()
		}
	}
	var late error
	select {
	case <-p.done:
	case <-ctx.Done():
		late = ctx.Err()
		p.abort()
		<-p.done
	}
	p.abort()
	if p.drained != nil {
		<-p.drained
	}
	p.rep.flush(p)
	if late != nil {
		return fmt.Errorf("batch: %d plugin events dropped undelivered at shutdown (%w): allow more shutdown time or check the plugin service",
			p.shutdown.Load(), late)
	}
	return nil
}

func (p *Pipeline) laneDone() {
	if p.running.Add(-1) == 0 {
		close(p.done)
	}
}

// Stats returns a snapshot of the pipeline's counters, for metrics and
// tests. Queued takes each lane's lock in turn, so it is not one instant
// across lanes.
func (p *Pipeline) Stats() Stats {
	s := p.counters()
	for _, l := range p.lanes {
		s.Queued += l.len()
	}
	return s
}

// counters is Stats without Queued, which needs every lane's lock.
func (p *Pipeline) counters() Stats {
	return Stats{
		Batches: p.batches.Load(),
		Sent:    p.sent.Load(),
		Retried: p.retried.Load(),
		Dropped: Drops{
			Overflow: p.overflow.Load(),
			Failed:   p.failed.Load(),
			Encode:   p.encode.Load(),
			Shutdown: p.shutdown.Load(),
			Spool:    p.spoolBound.Load(),
		},
		Spooled:   p.spooled.Load(),
		FromSpool: p.fromSpool.Load(),
		Unwanted:  p.unwanted.Load(),
	}
}
