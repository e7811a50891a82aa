package jsstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// known is the last value of a head this store read or wrote, and the
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

// committer applies the queued batches in order, several in one JetStream
// publish when they fit, so that concurrent commits share a round trip.
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
// the batch limit, counting for each session its head once and the
// chunks its entries may take (a chunk spans neither two buckets nor
// more than chunkBytes), and one message for each session or retained
// record written, and the body records of the messages queued for
// several sessions. An atomic batch over the limit would be refused whole.
func (s *Store) group(reqs []*commitReq) int {
	total, bodies := 0, 0
	type load struct{ entries, bytes int }
	queued := map[string]load{} // by client id: queued in the group
	perSession := func(l load) int { return 3 + l.entries/bucketSize + l.bytes/s.chunkBytes }
	for i, r := range reqs {
		n := 0
		touch := func(id string, e, bytes int) {
			old, ok := queued[id]
			if ok {
				n -= perSession(old)
			}
			l := load{old.entries + e, old.bytes + bytes}
			queued[id] = l
			n += perSession(l)
		}
		for j := range r.b.Ops {
			op := &r.b.Ops[j]
			switch op.Kind {
			case store.OpEnqueue:
				ds := op.Deliveries
				shared := sharedBy(ds)
				for k := range ds {
					e := entry{body: "xxxxxxxxxxxxxxxxxxxxxx", msg: op.Msg, d: ds[k], shared: shared}
					touch(ds[k].ClientID, 1, e.size())
				}
				if shared {
					bodies += (&entry{msg: op.Msg}).msgSize()
				}
			case store.OpPutSession, store.OpDeleteSession:
				n++
				touch(op.ClientID, 0, 0)
			case store.OpPutRetained, store.OpDeleteRetained:
				n++
			default:
				touch(op.ClientID, 0, 0)
			}
		}
		// The body records the group's shared messages take (as
		// tx.records counts them).
		recs := s.bodyRecords(bodies)
		if i > 0 && total+n+recs > s.opts.MaxBatch {
			return i
		}
		total += n
	}
	return len(reqs)
}

// commitGroup commits reqs as one publish, retrying from fresh reads when
// another writer got in between; if they do not fit together, in halves.
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
		// group counts what a request may write at most, so this is
		// rare: halve the group, in order.
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
// concurrent writers of the same sessions; then it fails.
const maxAttempts = 10

func (s *Store) commitRetry(reqs []*commitReq, split bool) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err = s.commitOnce(reqs, split); !errors.Is(err, errConflict) {
			return err
		}
		// Another process wrote a head this store read: read again.
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.conflicts })
		clear(s.known)
	}
	return err
}

// commitOnce builds the transaction of reqs from the stream's state and
// publishes it. Only once it is stored are sequence numbers handed back
// and the known heads updated.
func (s *Store) commitOnce(reqs []*commitReq, split bool) error {
	// Past the check of each request's context, a commit is carried
	// through: the requests' own timeouts bound it.
	ctx := context.Background()
	if err := s.prefetch(ctx, reqs); err != nil {
		return err
	}
	x := &tx{s: s, ctx: ctx, vals: map[string]*val{}, heads: map[string]*txHead{}}
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
	recs := x.records()
	if len(msgs)+recs > s.opts.MaxBatch {
		if !split {
			return errTooBig
		}
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.split })
	}
	stored := make([]uint64, len(msgs)) // the stream sequence of each
	parts := s.parts(msgs, max(s.opts.MaxBatch-recs, s.opts.MaxBatch/2))
	for _, p := range parts {
		start, part := p[0], s.encodePart(msgs[p[0]:p[1]])
		var last uint64
		var err error
		if len(part) == 1 {
			// One message is atomic by itself, and a plain publish
			// costs the server far less than an atomic batch.
			last, err = s.publishOne(ctx, part[0])
		} else {
			last, err = s.publishBatch(ctx, part)
		}
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
		// The part's body records come after its messages.
		for i := range p[1] - p[0] {
			stored[start+i] = last - uint64(len(part)-1-i)
		}
		// Stored: the sessions reading them from this node will not
		// have to fetch them.
		for i := p[1] - p[0]; i < len(part); i++ {
			s.bodies.put(part[i].rec, last-uint64(len(part)-1-i), part[i].data)
		}
	}
	s.learn(msgs, stored)
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
	s.collect(ctx, x, msgs, stored)
	return nil
}

// parts cuts msgs into atomic batches of at most limit messages (to
// which encodePart adds the body records),
// keeping a session's head and chunks in one part: if a later part
// fails, each session has all of the commit's writes or none of them
// (a head counting entries whose chunk is missing would hold its floor
// back for good).
func (s *Store) parts(msgs []pubMsg, limit int) [][2]int {
	var out [][2]int
	for start := 0; start < len(msgs); {
		end := min(start+limit, len(msgs))
		if g := msgs[min(end, len(msgs)-1)].grp; end < len(msgs) && g != 0 && msgs[end-1].grp == g {
			b := end - 1
			for b > start && msgs[b-1].grp == g {
				b--
			}
			if b > start {
				end = b // else the session alone is over the limit
			}
		}
		out = append(out, [2]int{start, end})
		start = end
	}
	return out
}

// records is the most body records one part of the transaction can need
// (see encodePart: a record is cut before a message that would take it
// over chunkBytes, so two records in a row hold more than chunkBytes).
func (x *tx) records() int {
	return x.s.bodyRecords(x.shared)
}

// bodyRecords is the most body records messages taking bytes in all can
// need (see records).
func (s *Store) bodyRecords(bytes int) int {
	if bytes == 0 {
		return 0
	}
	return 1 + 2*bytes/s.chunkBytes
}

// sharedBy says whether a message queued for ds is queued for several
// sessions, and so stored once, in a body record.
func sharedBy(ds []store.Delivery) bool {
	return len(ds) > 1 && slices.ContainsFunc(ds[1:], func(d store.Delivery) bool { return d.ClientID != ds[0].ClientID })
}

// encodePart encodes the chunks of one part of a publish and adds after
// them the body records holding, once each, the messages the part queues
// for several sessions; its chunks refer to them. A body record is
// written in the same atomic batch as every chunk referring to it, and
// after them: a body record is needed only while a chunk older than it
// in the stream lives (see reclaimBodies). A message queued for sessions
// in two parts of a split publish is stored in each part.
func (s *Store) encodePart(msgs []pubMsg) []pubMsg {
	out := make([]pubMsg, len(msgs), len(msgs)+1)
	copy(out, msgs)
	var recs []pubMsg
	var cur []*store.MessageRecord
	curBytes, id := 0, ""
	placed := map[string][2]int{} // body id → record, index
	flush := func() {
		if len(cur) > 0 {
			recs = append(recs, pubMsg{subj: s.bodiesSubj(id), data: appendBodies(nil, cur), rec: id})
		}
		cur, curBytes, id = nil, 0, ""
	}
	var ids []string
	for i := range out {
		m := &out[i]
		if m.chunk == nil {
			continue
		}
		es := slices.Clone(m.chunk)
		for k := range es {
			e := &es[k]
			if !e.shared {
				continue
			}
			at, ok := placed[e.body]
			if !ok {
				size := e.msgSize()
				if len(cur) > 0 && curBytes+size > s.chunkBytes {
					flush()
				}
				if len(cur) == 0 {
					id = nuid.Next()
					ids = append(ids, id)
				}
				at = [2]int{len(ids) - 1, len(cur)}
				placed[e.body] = at
				cur = append(cur, e.msg)
				curBytes += size
			}
			e.rec, e.idx = ids[at[0]], at[1]
		}
		m.data, m.chunk = appendChunk(nil, m.first, es), nil
	}
	flush()
	return append(out, recs...)
}

// collect purges what the commit left behind: a deleted session's old
// queues, the chunks of a queue it emptied, and the chunks of buckets the
// floor has left. It is garbage
// collection, safe to skip (every read ignores what it would remove) and
// to repeat: a failure is counted and logged, and the next purge of the
// session removes it too.
func (s *Store) collect(ctx context.Context, x *tx, msgs []pubMsg, stored []uint64) {
	headSeq := map[string]uint64{}
	for i, m := range msgs {
		if m.head != nil {
			headSeq[m.head.id] = stored[i]
		}
	}
	for _, th := range x.order {
		hs := headSeq[th.id]
		if hs == 0 {
			continue
		}
		var err error
		switch {
		case th.h.gen != th.jsGen && th.exists:
			// Every chunk of the old generations is older than the
			// head that moved past them; the new generation's are
			// after it in the batch.
			err = s.purge(ctx, s.queueFilter(th.tok), hs)
		case th.h.floor > th.jsFloor && th.h.live() == 0:
			// Emptied: every chunk older than the head is
			// acknowledged (a session at rest keeps nothing).
			err = s.purge(ctx, s.queueFilter(th.tok), hs)
		case th.h.floor/bucketSize > th.jsFloor/bucketSize:
			err = s.purgeBelow(ctx, th.tok, th.h.gen, th.h.floor, hs)
		}
		if err != nil {
			s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.reclaim })
			s.opts.Logger.Warn("jsstore: purging acknowledged or deleted queue entries", "client", th.id, "err", err)
		}
	}
}

// purgeBelow removes the chunks of a session's buckets below the floor's:
// every chunk older in the stream than the first of the floor's bucket
// (chunks are in sequence order in the stream). Without such a chunk the
// queue is empty up to the head written at stream sequence headSeq, and
// everything before it goes.
func (s *Store) purgeBelow(ctx context.Context, tok string, gen, floor, headSeq uint64) error {
	_, first, err := s.nextFor(ctx, s.bucketPrefix(tok, gen, floor/bucketSize)+"*", 0)
	if err != nil {
		return err
	}
	if first == 0 || first > headSeq {
		first = headSeq
	}
	return s.purge(ctx, s.queueFilter(tok), first)
}

// prefetch reads, concurrently, the heads of the sessions reqs touch that
// the store does not know. What it reads is checked at commit like
// anything known.
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
			case store.OpPutSession, store.OpPutRetained, store.OpDeleteRetained:
			default:
				heads = append(heads, s.headSubj(op.ClientID))
			}
		}
	}
	return s.fetch(ctx, heads)
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

// learn records the heads a commit stored and where.
func (s *Store) learn(msgs []pubMsg, stored []uint64) {
	if len(s.known) > maxKnown {
		clear(s.known)
	}
	for i, m := range msgs {
		if m.head != nil {
			s.known[m.subj] = known{data: m.data, seq: stored[i]}
		}
	}
}

// val is a session or retained record in a transaction: its value as the
// transaction leaves it (nil: deleted).
type val struct {
	data  []byte
	order int
}

// txHead is a session's head in a transaction, and the entries the
// transaction queues for it.
type txHead struct {
	id, tok string
	h       head
	exists  bool   // the stream holds a head
	seq     uint64 // its stream sequence, for compare-and-set
	dirty   bool
	jsGen   uint64 // the generation and floor in the stream
	jsFloor uint64
	first   uint64  // the sequence number of pending[0]
	pending []entry // queued in this transaction, in generation h.gen
}

// tx turns batch operations into the messages of one publish. Reads go
// through it, so a later operation sees what an earlier one wrote.
type tx struct {
	s     *Store
	ctx   context.Context
	vals  map[string]*val
	n     int
	heads map[string]*txHead
	order []*txHead // in the order first touched
	// shared is about how many bytes the messages queued for several
	// sessions take: what the body records of a publish may hold.
	shared int
}

// put sets subj to data (nil: delete) in the transaction.
func (x *tx) put(subj string, data []byte) {
	v := x.vals[subj]
	if v == nil {
		v = &val{order: x.n}
		x.n++
		x.vals[subj] = v
	}
	v.data = data
}

// head returns the transaction's head of session id, reading it from
// memory or the stream the first time.
func (x *tx) head(id string) (*txHead, error) {
	if th := x.heads[id]; th != nil {
		return th, nil
	}
	s := x.s
	subj := s.headSubj(id)
	k, ok := s.known[subj]
	if !ok {
		data, seq, err := s.lastFor(x.ctx, subj)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			data = nil
		}
		k = known{data: data, seq: seq}
		s.known[subj] = k
	}
	th := &txHead{id: id, tok: token(id), h: newHead(1), seq: k.seq, exists: k.data != nil}
	if k.data != nil {
		h, err := decodeHead(k.data)
		if err != nil {
			return nil, err
		}
		th.h = h.clone() // the known value stays as stored
	}
	th.jsGen, th.jsFloor = th.h.gen, th.h.floor
	x.heads[id] = th
	x.order = append(x.order, th)
	return th, nil
}

// apply adds one operation; for Enqueue it returns the sequence numbers
// assigned to its deliveries.
func (x *tx) apply(op *store.Op) ([]uint64, error) {
	s := x.s
	switch op.Kind {
	case store.OpPutSession:
		x.put(s.sessionSubj(op.ClientID), store.AppendSession(nil, op.Session))
		return nil, nil
	case store.OpDeleteSession:
		return nil, x.deleteSession(op.ClientID)
	case store.OpPutRetained:
		x.put(s.retainedSubj(op.Topic), store.AppendMessage(nil, op.Msg))
		return nil, nil
	case store.OpDeleteRetained:
		x.put(s.retainedSubj(op.Topic), nil)
		return nil, nil
	case store.OpEnqueue:
		return x.enqueue(op.Msg, op.Deliveries)
	}
	th, err := x.head(op.ClientID)
	if err != nil {
		return nil, err
	}
	changed := false
	switch op.Kind {
	case store.OpAck:
		changed = th.h.ack(op.Seq)
	case store.OpSetInflight:
		th.h.setInflight(op.Inflight)
		changed = true
	case store.OpClearInflight:
		changed = th.h.clearInflight(op.PacketID)
	case store.OpAddQoS2In:
		changed = th.h.addQoS2(op.PacketID)
	case store.OpRemoveQoS2In:
		changed = th.h.removeQoS2(op.PacketID)
	default:
		return nil, fmt.Errorf("jsstore: unknown operation %d", op.Kind)
	}
	th.dirty = th.dirty || changed
	return nil, nil
}

func (x *tx) enqueue(m *store.MessageRecord, ds []store.Delivery) ([]uint64, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	body := nuid.Next()
	// Queued for several sessions: stored once, in a body record.
	shared := sharedBy(ds)
	if shared {
		x.shared += (&entry{msg: m}).msgSize()
	}
	seqs := make([]uint64, len(ds))
	for i := range ds {
		th, err := x.head(ds[i].ClientID)
		if err != nil {
			return nil, err
		}
		th.h.next++
		if len(th.pending) == 0 {
			th.first = th.h.next
		}
		th.pending = append(th.pending, entry{body: body, msg: m, d: ds[i], shared: shared})
		th.dirty = true
		seqs[i] = th.h.next
	}
	return seqs, nil
}

// deleteSession moves the session to a new generation: its queue and
// packet ids of the old one stop counting with this batch, and the old
// queue is purged after it (collect).
func (x *tx) deleteSession(id string) error {
	x.put(x.s.sessionSubj(id), nil)
	th, err := x.head(id)
	if err != nil {
		return err
	}
	th.pending = nil
	if th.exists {
		th.h = newHead(max(th.h.gen, th.jsGen+1))
		th.dirty = true
	} else {
		// Nothing of it in the stream: as if never written.
		th.h = newHead(th.jsGen)
		th.dirty = false
	}
	return nil
}

// fit is how many of es, from the first, one chunk takes: all up to the
// one that takes them over chunkBytes, and at least one.
func (s *Store) fit(es []entry) int {
	bytes := 0
	for k := range es {
		if bytes += es[k].size(); bytes > s.chunkBytes && k > 0 {
			return k
		}
	}
	return len(es)
}

// messages are the transaction's writes: records in the order first
// written, then each session's head followed by its new chunks (a chunk
// per bucket its entries fall in, more if they take over chunkBytes).
// The chunks are left to encode (encodePart), and the body records to
// add, once the messages are cut in parts.
func (x *tx) messages() []pubMsg {
	recs := make([]pubMsg, x.n)
	for subj, v := range x.vals {
		recs[v.order] = pubMsg{subj: subj, data: v.data}
	}
	out := recs
	for k, th := range x.order {
		if !th.dirty {
			continue
		}
		out = append(out, pubMsg{subj: x.s.headSubj(th.id), data: appendHead(nil, &th.h), cas: true, expect: th.seq, head: th, grp: k + 1})
		for i := 0; i < len(th.pending); {
			first := th.first + uint64(i)
			inBucket := min(len(th.pending)-i, int(bucketSize-first%bucketSize))
			n := x.s.fit(th.pending[i : i+inBucket])
			// Encoded once the publish is cut in parts (encodePart):
			// a shared message goes in the body records of its part.
			es := th.pending[i : i+n]
			refs := slices.ContainsFunc(es, func(e entry) bool { return e.shared })
			out = append(out, pubMsg{subj: x.s.chunkSubj(refs, th.tok, th.h.gen, first), chunk: es, first: first, grp: k + 1})
			i += n
		}
	}
	return out
}
