package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/store"
)

// Body records are reclaimed without reference counts. A body record is
// written in the same atomic batch as the q chunks that refer to it,
// after them, and an atomic batch takes consecutive stream sequences:
// every chunk referring to a body record is older in the stream than
// it, and younger than every message of earlier publishes. So once the
// oldest q chunk left in the stream is at sequence F, no chunk refers to
// a body record below F, and one purge of the body subjects below F
// removes them all. Any process may do it at any time: it reads the
// stream alone, and doing it again, or late, removes nothing more than
// is unreferenced. (p chunks hold their messages and do not count.)
//
// A session that acknowledges nothing holds F, and so every body record
// written since, however few of them it refers to. When its oldest q
// chunk is older than LaggardAge, its chunks are written again as p
// chunks (unpin), which lets F move on.

// reclaimer runs reclaimBodies every ReclaimInterval until the store
// closes. (Not after each purge of chunks: under load that would be a
// stream info request and two more without pause; bodies wait at most an
// interval longer.)
func (s *Store) reclaimer() {
	defer close(s.reclaimDone)
	t := time.NewTicker(s.opts.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*s.opts.Timeout)
		if err := s.reclaimBodies(ctx, s.opts.LaggardAge); err != nil {
			s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.reclaim })
			s.opts.Logger.Warn("jsstore: reclaiming message bodies", "err", err)
		}
		cancel()
	}
}

// reclaimBodies purges the body records no chunk refers to: those below
// the oldest q chunk in the stream, or, with no q chunk at all, every
// body record stored before it looked. Sessions whose oldest q chunk is
// older than laggardAge are rewritten first (unpin), oldest first, as
// many as the run has time for.
func (s *Store) reclaimBodies(ctx context.Context, laggardAge time.Duration) error {
	// Read first: whatever is published after it is after it.
	last, err := s.lastSeq(ctx)
	if err != nil {
		return err
	}
	subj, first, at, err := s.nextWhen(ctx, s.p+"q.>", 0)
	if err != nil {
		return err
	}
	// Rewrite laggards, oldest first, while that moves the oldest q
	// chunk on and the run has time left for another.
	for first != 0 && laggardAge > 0 && time.Since(at) > laggardAge && s.timeLeft(ctx) {
		if err := s.unpin(ctx, subj, first); err != nil {
			return err
		}
		prev := first
		if subj, first, at, err = s.nextWhen(ctx, s.p+"q.>", 0); err != nil {
			return err
		}
		if first == prev {
			break // left as it was (written meanwhile, or too big)
		}
	}
	var age time.Duration
	if first != 0 {
		age = time.Since(at)
	}
	s.opts.Metrics.set(func(m *Metrics) prometheus.Gauge { return m.oldest }, age.Seconds())
	mark := last + 1
	if first != 0 {
		mark = first
	}
	if mark <= 1 {
		return nil // a purge from sequence 0 would take everything
	}
	if err := s.purge(ctx, s.p+"m.>", mark); err != nil {
		return err
	}
	s.bodies.dropBelow(mark)
	return nil
}

// timeLeft says whether ctx leaves a request timeout or more.
func (s *Store) timeLeft(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) > s.opts.Timeout
}

// parseChunkSubj splits a chunk subject q.T.G.B.N or p.T.G.B.N (after
// the prefix).
func (s *Store) parseChunkSubj(subj string) (tok string, gen, bucket uint64, ok bool) {
	f := strings.Split(strings.TrimPrefix(subj, s.p), ".")[1:]
	if len(f) != 4 {
		return "", 0, 0, false
	}
	gen, err1 := strconv.ParseUint(f[1], 10, 64)
	bucket, err2 := strconv.ParseUint(f[2], 10, 64)
	return f[0], gen, bucket, err1 == nil && err2 == nil
}

// unpin makes the session of q chunk subj (the oldest in the stream, at
// stream sequence seq) stop holding body records back. A chunk the
// session no longer reads (an older generation, a bucket below its
// floor: a purge after its commit did not happen) is purged. Otherwise
// every chunk the session has from it on is written again as a p chunk,
// with the messages inline and the acknowledged entries left without
// one, in one atomic batch with a tombstone on each q subject and the
// session's head (unchanged, compare-and-set: a concurrent writer of the
// session makes the batch fail, and the next run looks again; the
// session's next commit meets it as a conflict and reads the head
// again). A p chunk takes the sequence number, hence the subject, of the
// chunk it replaces (an old p chunk is replaced on its subject), so the
// session's chunks stay in sequence order in the stream (the ones before
// seq are older, the rest are all rewritten, in order) and Scan finds
// them as before; a chunk too large once inline is cut in two, the
// second part under the subject of its own first sequence number. A
// session with more chunks than one atomic batch takes is left, counted.
func (s *Store) unpin(ctx context.Context, subj string, seq uint64) error {
	tok, gen, bucket, ok := s.parseChunkSubj(subj)
	if !ok {
		return fmt.Errorf("jsstore: chunk subject %q", subj)
	}
	all := s.queueFilter(tok)
	hdata, hseq, err := s.lastFor(ctx, s.p+"h."+tok)
	if err != nil {
		return err
	}
	if len(hdata) == 0 {
		// A head is written with the chunks: none means they are
		// unreachable.
		return s.purge(ctx, all, seq+1)
	}
	h, err := decodeHead(hdata)
	if err != nil {
		return err
	}
	switch {
	case h.live() == 0:
		return s.purge(ctx, all, hseq)
	case gen != h.gen || bucket < h.floor/bucketSize:
		return s.purgeBelow(ctx, tok, h.gen, h.floor, hseq)
	}
	tooBig := func(chunks int) {
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.laggardTooBig })
		s.opts.Logger.Warn("jsstore: a session with old unacknowledged messages holds back the reclaiming of message bodies, and has too many chunks to rewrite", "session", tok, "chunks", chunks)
	}
	type chunk struct {
		subj  string
		first uint64
		es    []entry
	}
	var chunks []chunk
	var refs []bodyRef
	var derr error
	next, hasRefs := uint64(0), false
	_, err = s.each(ctx, s.genPrefix(tok, h.gen)+"*.*", seq, s.opts.ReadBatch, func(csubj string, _ uint64, data []byte) bool {
		if len(data) == 0 {
			return true // rewritten already
		}
		first, es, err := decodeChunk(data)
		if err != nil {
			derr = err
			return false
		}
		if first < next {
			// A chunk a rewrite that did not finish left
			// behind: its entries come again later.
			return true
		}
		next = first + uint64(len(es))
		hasRefs = hasRefs || strings.HasPrefix(csubj, s.p+"q.")
		for i := range es {
			e := &es[i]
			if h.isAcked(first + uint64(i)) {
				*e = entry{d: e.d, body: e.body, gone: true}
				continue
			}
			if e.gone {
				derr = fmt.Errorf("%w: queue chunk %s: entry %d queued but rewritten as acknowledged", store.ErrCorrupt, subj, first+uint64(i))
				return false
			}
			if e.rec != "" {
				refs = append(refs, bodyRef{e.rec, e.idx})
			}
		}
		chunks = append(chunks, chunk{csubj, first, es})
		return len(chunks) < s.opts.MaxBatch
	})
	if err = errors.Join(err, derr); err != nil {
		return err
	}
	if len(chunks) >= s.opts.MaxBatch {
		tooBig(len(chunks))
		return nil
	}
	if !hasRefs {
		return nil // all inline: it holds nothing back (a q subject just tombstoned)
	}
	// The bodies of a session that reads nothing: not worth a place in
	// the cache.
	ms, missing, err := s.resolve(ctx, refs, false)
	if err != nil {
		return err
	}
	if missing {
		return nil // acknowledged or rewritten meanwhile: look again next time
	}
	// The q chunks are deleted (a tombstone replaces each), then every
	// chunk is written again as a p chunk, in order, and the head.
	var msgs []pubMsg
	for _, c := range chunks {
		if strings.HasPrefix(c.subj, s.p+"q.") {
			msgs = append(msgs, pubMsg{subj: c.subj})
		}
	}
	tombs := len(msgs)
	k := 0
	for _, c := range chunks {
		for i := range c.es {
			if e := &c.es[i]; e.rec != "" {
				e.msg, e.rec, e.shared = ms[k], "", false
				k++
			}
		}
		for i := 0; i < len(c.es); {
			n := s.fit(c.es[i:])
			first := c.first + uint64(i)
			msgs = append(msgs, pubMsg{subj: s.chunkSubj(false, tok, h.gen, first), data: appendChunk(nil, first, c.es[i:i+n])})
			i += n
		}
	}
	msgs = append(msgs, pubMsg{subj: s.p + "h." + tok, data: hdata, cas: true, expect: hseq})
	if len(msgs) > s.opts.MaxBatch {
		tooBig(len(msgs) - 1 - tombs)
		return nil
	}
	_, err = s.publishBatch(ctx, msgs)
	if errors.Is(err, errConflict) {
		return nil // the session was written meanwhile: look again next time
	}
	if err == nil {
		s.opts.Metrics.inc(func(m *Metrics) prometheus.Counter { return m.laggards })
	}
	return err
}
