package jsstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/store"
)

// commitReq is one store.Batch waiting for the committer.
type commitReq struct {
	ctx  context.Context
	b    *store.Batch
	done func(error)
}

// known is the last value of a subject this store read or wrote, and the
// stream sequence it has there (0: none), for compare-and-set.
type known struct {
	data []byte
	seq  uint64
}

// maxKnown bounds the memory of known values; past it they are dropped
// and read again.
const maxKnown = 100_000

// Commit applies b atomically and returns once JetStream has stored it on
// the configured number of replicas.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.push(&commitReq{ctx: ctx, b: b, done: func(err error) { ch <- err }}, true)
	return <-ch
}

// CommitAsync applies b and calls done, on the store's notifier, once it
// is stored or has failed; callbacks follow commit order.
func (s *Store) CommitAsync(b *store.Batch, done func(error)) {
	s.push(&commitReq{ctx: context.Background(), b: b, done: done}, false)
}

// push queues r for the committer. Commit's own callback runs on the
// committer goroutine; CommitAsync's on the notifier, queued there in
// commit order.
func (s *Store) push(r *commitReq, sync bool) {
	cb := r.done
	if !sync {
		r.done = func(err error) { s.notify.Push(nil, func(error) { cb(err) }) }
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if sync {
			cb(store.ErrClosed)
		} else {
			// Queued behind the callbacks still to run, or at once
			// if the notifier has stopped: ErrClosed either way.
			s.notify.Push(nil, func(error) { cb(store.ErrClosed) })
		}
		return
	}
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// committer applies the queued batches in order, several in one atomic
// JetStream batch when they fit, so that concurrent commits share a
// round trip.
func (s *Store) committer() {
	defer close(s.done)
	for {
		s.mu.Lock()
		reqs := s.reqs
		s.reqs = nil
		closed := s.closed
		s.mu.Unlock()
		if len(reqs) == 0 {
			if closed {
				return
			}
			<-s.wake
			continue
		}
		for len(reqs) > 0 {
			n := s.group(reqs)
			s.commitGroup(reqs[:n])
			reqs = reqs[n:]
		}
	}
}

// group is how many of reqs to commit together: as many as surely fit
// the batch limit, counting for each operation the most messages it can
// write, a session's head once per group (heads are written once however
// many operations touch them). When the same sessions are written again
// and again (a broker's subscribers), a batch carries about twice the
// commits a count of one head per delivery allowed; the commits that do
// not fit wait for the next batch, and an atomic batch that went over the
// limit would be refused whole.
func (s *Store) group(reqs []*commitReq) int {
	total := 0
	heads := map[string]bool{}
	head := func(id string) int {
		if heads[id] {
			return 0
		}
		heads[id] = true
		return 1
	}
	for i, r := range reqs {
		n := 0
		for j := range r.b.Ops {
			op := &r.b.Ops[j]
			switch op.Kind {
			case store.OpEnqueue:
				// The body and its reference count, then an
				// entry per delivery.
				n += 2 + len(op.Deliveries)
				for _, d := range op.Deliveries {
					n += head(d.ClientID)
				}
			case store.OpAck:
				// The entry, the count, and the body with its
				// last reference.
				n += 3 + head(op.ClientID)
			case store.OpDeleteSession:
				// The session, and a short queue released in
				// the batch: entry, count and body each.
				n += 2 + 3*inlineRelease + head(op.ClientID)
			case store.OpSetInflight, store.OpClearInflight, store.OpAddQoS2In, store.OpRemoveQoS2In:
				n += 1 + head(op.ClientID)
			default:
				n++
			}
		}
		if i > 0 && total+n > s.opts.MaxBatch {
			return i
		}
		total += n
	}
	return len(reqs)
}

// commitGroup commits reqs as one atomic batch, retrying from fresh reads
// when another writer got in between; if they do not fit together, one by
// one.
func (s *Store) commitGroup(reqs []*commitReq) {
	live := reqs[:0:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.done(err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	err := s.commitRetry(live, len(live) == 1)
	if err != nil && !errors.Is(err, errTooBig) {
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.failed })
	}
	if errors.Is(err, errTooBig) && len(live) > 1 {
		// group counts what an operation may write at most, so this
		// is rare: halve the group, in order.
		half := len(live) / 2
		s.commitGroup(live[:half])
		s.commitGroup(live[half:])
		return
	}
	for _, r := range live {
		r.done(err)
	}
}

// maxAttempts bounds the rebuilds of one commit that keeps meeting
// concurrent writers (reference counts of a message whose subscribers
// are acknowledging it on several nodes at once); then it fails.
const maxAttempts = 10

func (s *Store) commitRetry(reqs []*commitReq, split bool) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err = s.commitOnce(reqs, split); !errors.Is(err, errConflict) {
			return err
		}
		// Another process wrote a subject this store read: read again.
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.conflicts })
		clear(s.known)
	}
	return err
}

// commitOnce builds the transaction of reqs from the stream's state and
// publishes it. Only once it is stored are sequence numbers handed back
// and the known values updated.
func (s *Store) commitOnce(reqs []*commitReq, split bool) error {
	// Past the check of each request's context, a commit is carried
	// through: the requests' own timeouts bound it.
	ctx := context.Background()
	x := &tx{s: s, ctx: ctx, vals: map[string]*val{}, heads: map[string]*txHead{}}
	if err := s.prefetch(ctx, reqs); err != nil {
		return err
	}
	var seqs [][]uint64
	for _, r := range reqs {
		for i := range r.b.Ops {
			ss, err := x.apply(&r.b.Ops[i])
			if err != nil {
				return err
			}
			seqs = append(seqs, ss)
		}
	}
	msgs := x.messages()
	if len(msgs) > s.opts.MaxBatch {
		if !split {
			return errTooBig
		}
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.split })
	}
	for start := 0; start < len(msgs); start += s.opts.MaxBatch {
		part := msgs[start:min(start+s.opts.MaxBatch, len(msgs))]
		seq, err := s.publishBatch(ctx, part)
		if err != nil {
			if start > 0 {
				// Earlier parts are stored: what is known may be
				// stale, and the batch must not be built again
				// (so no errConflict wrapped, which would retry).
				clear(s.known)
				err = fmt.Errorf("jsstore: batch of %d messages applied in part: %v", len(msgs), err)
			}
			return err
		}
		s.learn(part, seq)
	}
	i := 0
	for _, r := range reqs {
		for j := range r.b.Ops {
			op := &r.b.Ops[j]
			for k := range op.Deliveries {
				op.Deliveries[k].Seq = seqs[i][k]
			}
			i++
		}
	}
	for _, c := range x.cleanups {
		if err := s.reclaim(ctx, c); err != nil {
			// The session is deleted (its generation moved on);
			// what is left of the old one is invisible garbage.
			s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.reclaim })
			s.opts.Logger.Warn("jsstore: reclaiming a deleted session's queue", "client", c.id, "err", err)
		}
	}
	return nil
}

// prefetch reads, concurrently, what building the transaction of reqs
// will read and the store does not know: the heads of the sessions it
// touches, then the entries it acknowledges, then their bodies' reference
// counts. Without it each acknowledgement would cost two round trips in
// turn. What it reads is checked at commit like anything known.
func (s *Store) prefetch(ctx context.Context, reqs []*commitReq) error {
	var heads []string
	for _, r := range reqs {
		for i := range r.b.Ops {
			op := &r.b.Ops[i]
			switch op.Kind {
			case store.OpEnqueue:
				for _, d := range op.Deliveries {
					heads = append(heads, s.headSubj(d.ClientID))
				}
			case store.OpAck, store.OpDeleteSession, store.OpSetInflight, store.OpAddQoS2In:
				heads = append(heads, s.headSubj(op.ClientID))
			}
		}
	}
	if err := s.fetch(ctx, heads); err != nil {
		return err
	}
	var entries []string
	for _, r := range reqs {
		for i := range r.b.Ops {
			op := &r.b.Ops[i]
			if op.Kind != store.OpAck {
				continue
			}
			h := head{gen: 1}
			if k := s.known[s.headSubj(op.ClientID)]; k.data != nil {
				h, _ = decodeHead(k.data)
			}
			if op.Seq > 0 && op.Seq <= h.next {
				entries = append(entries, s.entrySubj(op.ClientID, h.gen, op.Seq))
			}
		}
	}
	if err := s.fetch(ctx, entries); err != nil {
		return err
	}
	var counts []string
	for _, subj := range entries {
		if k := s.known[subj]; k.data != nil {
			if e, err := decodeEntry(k.data); err == nil {
				counts = append(counts, s.countSubj(e.body))
			}
		}
	}
	return s.fetch(ctx, counts)
}

// fetch reads the subjects the store does not know, a few at a time, into
// what it knows.
func (s *Store) fetch(ctx context.Context, subjects []string) error {
	var todo []string
	seen := map[string]bool{}
	for _, subj := range subjects {
		if _, ok := s.known[subj]; !ok && !seen[subj] {
			seen[subj] = true
			todo = append(todo, subj)
		}
	}
	if len(todo) < 2 {
		return nil // one read costs the same here or in the transaction
	}
	got := make([]known, len(todo))
	errs := make([]error, len(todo))
	sem := make(chan struct{}, fetchParallel)
	var wg sync.WaitGroup
	for i, subj := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, seq, err := s.lastFor(ctx, subj)
			if len(data) == 0 {
				data = nil
			}
			got[i], errs[i] = known{data: data, seq: seq}, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, subj := range todo {
		s.known[subj] = got[i]
	}
	return nil
}

// fetchParallel bounds the reads one commit has in flight at once.
const fetchParallel = 32

// learn records the values of a stored part; an atomic batch is stored at
// consecutive stream sequences ending at last. A wrong guess would only
// cost a failed compare-and-set and a fresh read.
func (s *Store) learn(part []pubMsg, last uint64) {
	if len(s.known) > maxKnown {
		clear(s.known)
	}
	first := last - uint64(len(part)) + 1
	for i, m := range part {
		if !m.cas {
			continue
		}
		if m.data == nil && !strings.HasPrefix(m.subj, s.p+"h.") {
			delete(s.known, m.subj) // a tombstone expires: read it again if ever needed
			continue
		}
		s.known[m.subj] = known{data: m.data, seq: first + uint64(i)}
	}
}

// val is a subject in a transaction: its value as the transaction leaves
// it, and what the stream holds.
type val struct {
	data  []byte // nil: absent
	dirty bool
	read  bool   // the stream's value was read (data started from it)
	orig  bool   // the stream holds a live record
	seq   uint64 // its stream sequence, for compare-and-set
	cas   bool
	order int
	// owner and gen: a packet id record of session owner's generation
	// gen, not written if the transaction moves the session past it.
	owner string
	gen   uint64
}

type txHead struct {
	h       head
	jsGen   uint64   // the generation in the stream before the transaction
	jsNext  uint64   // and its last seq
	created []string // entry subjects of h.gen created in the transaction
}

type cleanup struct {
	id        string
	gen, next uint64 // the old generation and the last seq it handed out
	released  bool   // its entries were released in the batch: only purge
}

// tx turns batch operations into the messages of one atomic batch. Reads
// go through it, so a later operation sees what an earlier one wrote.
type tx struct {
	s        *Store
	ctx      context.Context
	vals     map[string]*val
	n        int
	heads    map[string]*txHead
	cleanups []cleanup
}

// get returns the transaction's value of a compare-and-set subject,
// reading it from memory or the stream the first time.
func (x *tx) get(subj string) (*val, error) {
	if v := x.vals[subj]; v != nil {
		return v, nil
	}
	k, ok := x.s.known[subj]
	if !ok {
		data, seq, err := x.s.lastFor(x.ctx, subj)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			data = nil
		}
		k = known{data: data, seq: seq}
		x.s.known[subj] = k
	}
	v := &val{data: k.data, read: true, orig: k.data != nil, seq: k.seq, cas: true, order: -1}
	x.vals[subj] = v
	return v, nil
}

// put sets subj to data (nil: delete) in the transaction.
func (x *tx) put(subj string, data []byte) {
	v := x.vals[subj]
	if v == nil {
		v = &val{order: -1, orig: true} // never read: assume it may exist
		x.vals[subj] = v
	}
	if v.order < 0 {
		v.order = x.n
		x.n++
	}
	v.data, v.dirty = data, true
}

func (x *tx) head(id string) (*txHead, error) {
	if h := x.heads[id]; h != nil {
		return h, nil
	}
	v, err := x.get(x.s.headSubj(id))
	if err != nil {
		return nil, err
	}
	th := &txHead{h: head{gen: 1}}
	if v.data != nil {
		if th.h, err = decodeHead(v.data); err != nil {
			return nil, err
		}
	}
	th.jsGen, th.jsNext = th.h.gen, th.h.next
	x.heads[id] = th
	return th, nil
}

func (x *tx) putHead(id string, th *txHead) {
	x.put(x.s.headSubj(id), appendHead(nil, th.h))
}

// apply adds one operation; for Enqueue it returns the sequence numbers
// assigned to its deliveries.
func (x *tx) apply(op *store.Op) ([]uint64, error) {
	s := x.s
	switch op.Kind {
	case store.OpPutSession:
		x.put(s.sessionSubj(op.ClientID), store.AppendSession(nil, op.Session))
	case store.OpDeleteSession:
		return nil, x.deleteSession(op.ClientID)
	case store.OpPutRetained:
		x.put(s.retainedSubj(op.Topic), store.AppendMessage(nil, op.Msg))
	case store.OpDeleteRetained:
		x.put(s.retainedSubj(op.Topic), nil)
	case store.OpEnqueue:
		return x.enqueue(op.Msg, op.Deliveries)
	case store.OpAck:
		return nil, x.ack(op.ClientID, op.Seq)
	case store.OpSetInflight:
		return nil, x.putPid("i", op.ClientID, op.Inflight.PacketID, appendInflight(nil, op.Inflight))
	case store.OpClearInflight:
		return nil, x.putPid("i", op.ClientID, op.PacketID, nil)
	case store.OpAddQoS2In:
		return nil, x.putPid("2", op.ClientID, op.PacketID, []byte{qos2V1})
	case store.OpRemoveQoS2In:
		return nil, x.putPid("2", op.ClientID, op.PacketID, nil)
	default:
		return nil, fmt.Errorf("jsstore: unknown operation %d", op.Kind)
	}
	return nil, nil
}

// putPid sets or removes a packet id record of the session's current
// generation. Writing one makes sure the session has a head, so that
// DeleteSession finds a generation to move on from.
func (x *tx) putPid(kind, id string, pid uint16, data []byte) error {
	th, err := x.head(id)
	if err != nil {
		return err
	}
	if hv := x.vals[x.s.headSubj(id)]; hv.data == nil && !hv.dirty && data != nil {
		x.putHead(id, th)
	}
	subj := x.s.pidSubj(kind, id, th.h.gen, pid)
	x.put(subj, data)
	v := x.vals[subj]
	v.owner, v.gen = id, th.h.gen
	return nil
}

func (x *tx) enqueue(m *store.MessageRecord, ds []store.Delivery) ([]uint64, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	s := x.s
	id := nuid.Next()
	x.put(s.bodySubj(id), store.AppendMessage(nil, m))
	// A new id: nothing there to read, and set only if still so.
	x.vals[s.countSubj(id)] = &val{read: true, cas: true, order: -1}
	x.put(s.countSubj(id), appendCount(nil, uint64(len(ds))))
	seqs := make([]uint64, len(ds))
	for i := range ds {
		th, err := x.head(ds[i].ClientID)
		if err != nil {
			return nil, err
		}
		th.h.next++
		th.h.live++
		seqs[i] = th.h.next
		subj := s.entrySubj(ds[i].ClientID, th.h.gen, th.h.next)
		x.vals[subj] = &val{read: true, cas: true, order: -1}
		x.put(subj, appendEntry(nil, id, &ds[i]))
		th.created = append(th.created, subj)
		x.putHead(ds[i].ClientID, th)
	}
	return seqs, nil
}

// ack removes one entry and a reference to its body.
func (x *tx) ack(id string, seq uint64) error {
	th, err := x.head(id)
	if err != nil {
		return err
	}
	if seq == 0 || seq > th.h.next {
		return nil
	}
	v, err := x.get(x.s.entrySubj(id, th.h.gen, seq))
	if err != nil || v.data == nil {
		return err
	}
	return x.unref(id, th, v)
}

// unref removes entry v of session id and its reference.
func (x *tx) unref(id string, th *txHead, v *val) error {
	e, err := decodeEntry(v.data)
	if err != nil {
		return err
	}
	v.data, v.dirty = nil, true
	if v.order < 0 {
		v.order = x.n
		x.n++
	}
	if th.h.live > 0 {
		th.h.live--
	}
	x.putHead(id, th)
	return x.release(e.body)
}

// release drops one reference to body, and the body with the last.
func (x *tx) release(body string) error {
	s := x.s
	cv, err := x.get(s.countSubj(body))
	if err != nil {
		return err
	}
	if cv.data == nil {
		return fmt.Errorf("%w: message %s has no reference count", store.ErrCorrupt, body)
	}
	n, err := decodeCount(cv.data)
	if err != nil {
		return err
	}
	if n <= 1 {
		x.put(s.countSubj(body), nil)
		x.put(s.bodySubj(body), nil)
		return nil
	}
	x.put(s.countSubj(body), appendCount(nil, n-1))
	return nil
}

// deleteSession moves the session to a new generation: its queue,
// in-flight and QoS 2 records of the old one stop counting with this
// batch. The entries created in this transaction are released here; those
// already in the stream after the commit (reclaim).
func (x *tx) deleteSession(id string) error {
	s := x.s
	x.put(s.sessionSubj(id), nil)
	th, err := x.head(id)
	if err != nil {
		return err
	}
	hv := x.vals[s.headSubj(id)]
	if !hv.orig && !hv.dirty {
		return nil // no queue nor packet id was ever written
	}
	for _, subj := range th.created {
		if v := x.vals[subj]; v.data != nil {
			if err := x.unref(id, th, v); err != nil {
				return err
			}
		}
	}
	th.created = nil
	if hv.orig && th.h.gen == th.jsGen {
		c := cleanup{id: id, gen: th.jsGen, next: th.jsNext}
		if th.h.live <= inlineRelease {
			// A short queue is released in this batch, so that
			// no reference outlives the session whatever happens
			// after the commit: only subjects are left to purge.
			if err := x.releaseStored(id, th); err != nil {
				return err
			}
			c.released = true
		}
		x.cleanups = append(x.cleanups, c)
	}
	th.h = head{gen: th.h.gen + 1}
	x.putHead(id, th)
	return nil
}

// inlineRelease is the longest queue DeleteSession releases within its
// own batch (three messages per entry); a longer one is released after.
const inlineRelease = 64

// releaseStored releases the entries of the session's current generation
// that are in the stream and still live in the transaction.
func (x *tx) releaseStored(id string, th *txHead) error {
	var subjects []string
	err := x.s.eachEntry(x.ctx, id, th.h.gen, 0, th.h.next, 0, inlineRelease+1, func(subj string, _ uint64, data []byte) bool {
		if len(data) > 0 {
			subjects = append(subjects, subj)
		}
		return true
	})
	if err != nil {
		return err
	}
	if err := x.s.fetch(x.ctx, subjects); err != nil {
		return err
	}
	var bodies []string
	for _, subj := range subjects {
		if k, ok := x.s.known[subj]; ok && k.data != nil {
			if e, err := decodeEntry(k.data); err == nil {
				bodies = append(bodies, x.s.countSubj(e.body))
			}
		}
	}
	if err := x.s.fetch(x.ctx, bodies); err != nil {
		return err
	}
	for _, subj := range subjects {
		v, err := x.get(subj)
		if err != nil {
			return err
		}
		if v.data == nil {
			continue // acknowledged earlier in the transaction
		}
		if err := x.unref(id, th, v); err != nil {
			return err
		}
	}
	return nil
}

// messages are the transaction's writes in the order first written,
// leaving out records created and removed within it.
func (x *tx) messages() []pubMsg {
	msgs := make([]pubMsg, x.n)
	keep := make([]bool, x.n)
	for subj, v := range x.vals {
		if !v.dirty || v.data == nil && !v.orig {
			continue
		}
		if v.owner != "" && x.heads[v.owner].h.gen != v.gen {
			continue // the session was deleted after: reclaim purges the old generation
		}
		keep[v.order] = true
		msgs[v.order] = pubMsg{subj: subj, data: v.data, cas: v.cas, expect: v.seq}
	}
	out := msgs[:0]
	for i := range msgs {
		if keep[i] {
			out = append(out, msgs[i])
		}
	}
	return out
}

// reclaim clears the generation a DeleteSession moved past: it releases
// the entries of a long queue, then purges every subject of the
// generation.
func (s *Store) reclaim(ctx context.Context, c cleanup) error {
	id, gen := c.id, c.gen
	if !c.released {
		if err := s.releaseAfter(ctx, id, gen, c.next); err != nil {
			return err
		}
	}
	for _, kind := range []string{"q", "i", "2"} {
		if err := s.purge(ctx, s.genPrefix(kind, id, gen)+">"); err != nil {
			return err
		}
	}
	return nil
}

// releaseAfter releases the entries of a long queue whose session was
// deleted, in atomic batches that also remove the entries, so that one cut
// short can be run again.
func (s *Store) releaseAfter(ctx context.Context, id string, gen, next uint64) error {
	chunk := max(1, s.opts.MaxBatch/3)
	var entries []string
	flush := func() error {
		err := s.reclaimEntries(ctx, entries)
		entries = entries[:0]
		return err
	}
	var ferr error
	err := s.eachEntry(ctx, id, gen, 0, next, 0, chunk, func(subj string, _ uint64, data []byte) bool {
		if len(data) > 0 {
			entries = append(entries, subj)
		}
		if len(entries) >= chunk {
			ferr = flush()
		}
		return ferr == nil
	})
	if err = cmp.Or(err, ferr); err != nil {
		return err
	}
	if len(entries) > 0 {
		return flush()
	}
	return nil
}

func (s *Store) reclaimEntries(ctx context.Context, entries []string) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		x := &tx{s: s, ctx: ctx, vals: map[string]*val{}, heads: map[string]*txHead{}}
		for _, subj := range entries {
			var v *val
			if v, err = x.get(subj); err != nil {
				return err
			}
			if v.data == nil {
				continue
			}
			e, derr := decodeEntry(v.data)
			if derr != nil {
				return derr
			}
			x.put(subj, nil)
			if err = x.release(e.body); err != nil {
				return err
			}
		}
		msgs := x.messages()
		var seq uint64
		if seq, err = s.publishBatch(ctx, msgs); err == nil {
			s.learn(msgs, seq)
			return nil
		}
		if !errors.Is(err, errConflict) {
			return err
		}
		clear(s.known)
	}
	return err
}
