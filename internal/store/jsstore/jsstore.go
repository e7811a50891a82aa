package jsstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/store"
)

// Options configure a Store. The zero value of each field means its
// default.
type Options struct {
	// Prefix names the stream (<prefix>_store) and its subjects
	// (<prefix>.store.>); default "mqttd", the cluster's.
	Prefix string
	// Replicas is the number of JetStream servers each message is stored
	// on before a commit returns; default 1.
	Replicas int
	// Timeout bounds each JetStream request; default 5s.
	Timeout time.Duration
	// MaxBatch is the most messages one atomic batch may hold: the
	// server's atomic batch limit (1000 unless configured otherwise).
	// A store.Batch needing more is applied in several atomic parts.
	MaxBatch int
	// ReadBatch is the most messages one read request returns; default 256.
	ReadBatch int
	// TombstoneTTL is how long the empty message that deletes a record
	// stays in the stream; default 10s (JetStream's minimum is 1s).
	TombstoneTTL time.Duration
	// ReclaimInterval is how often the store purges the message bodies
	// no queue refers to any more; default 30s.
	ReclaimInterval time.Duration
	// LaggardAge bounds how long a session that acknowledges nothing
	// holds back the reclaiming of the message bodies stored after its
	// oldest entry: past it, its queue is rewritten with its messages
	// inline. Default 10m; negative: never.
	LaggardAge time.Duration
	// BodyCacheBytes bounds the body records (messages queued for
	// several sessions) kept in memory once written or read, so that
	// reading them again costs no request. Default 32 MiB; negative:
	// none kept.
	BodyCacheBytes int64
	// Logger for failures after a commit (purging acknowledged or
	// deleted queues); default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, counts conflicts, split batches and failures.
	Metrics *Metrics
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "mqttd"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = 256
	}
	if o.TombstoneTTL < time.Second {
		o.TombstoneTTL = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReclaimInterval <= 0 {
		o.ReclaimInterval = 30 * time.Second
	}
	if o.LaggardAge == 0 {
		o.LaggardAge = 10 * time.Minute
	}
	if o.BodyCacheBytes == 0 {
		o.BodyCacheBytes = DefaultBodyCacheBytes
	}
}

// DefaultBodyCacheBytes is the default of Options.BodyCacheBytes.
const DefaultBodyCacheBytes = 32 << 20

// Store is a store.Store on a JetStream stream. All methods are safe for
// concurrent use; several Stores (in several processes) may share the
// stream.
type Store struct {
	nc     *nats.Conn // the caller's: reads
	wc     *nats.Conn // the store's own: writes (see dialWriter)
	opts   Options
	stream string
	p      string // subject prefix, "<prefix>.store."
	// chunkBytes bounds the entries of one chunk (roughly, in bytes),
	// below the servers' maximum payload.
	chunkBytes int

	mu     sync.Mutex
	closed bool
	reqs   []*commitReq
	wake   chan struct{}
	done   chan struct{}
	notify *store.Notifier

	// Owned by the committer goroutine: the last known value and stream
	// sequence of heads written with compare-and-set.
	known map[string]known

	hintMu sync.Mutex
	hints  map[string]scanHint // by client id

	// The reclaimer of message bodies (see reclaimBodies).
	quit, reclaimDone chan struct{}

	// Body records written or read lately (nil: none kept).
	bodies *bodyCache

	// asked counts the messages batched reads by subject filter asked
	// for: what the server sends, whether the reader uses it or not (for
	// tests of the read's sizing).
	asked atomic.Int64
}

// scanHint is a lower bound kept from the last Scan of a session: its
// entries from seq on (in generation gen) are in chunks at stream
// sequence stream or after. It stays true as entries are added and
// acknowledged, so paging through a long queue does not look for its
// place again.
//
// per is about how many live entries a chunk of the session held on the
// last page: a chunk read costs its bytes whether or not the page needs
// its entries, and a batched read sends every message it asks for, so
// the next page asks for as many chunks as it should need, not for one
// per entry (a commit queueing 250 messages for the session writes one
// chunk of 250).
type scanHint struct {
	gen, seq, stream uint64
	per              int
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Counter = (*Store)(nil)
)

// errOldLayout explains why a stream of the previous layout is refused.
var errOldLayout = errors.New("the stream holds sessions in the layout of an earlier mqttd (one subject per queue entry), which this version does not read: " +
	"drain the sessions with the earlier version (or export them with mqttd export), then delete the stream or use another storage.jetstream prefix")

// errLayoutV2 explains why a stream of layout 2 is refused.
var errLayoutV2 = errors.New("the stream holds sessions in the layout of an earlier mqttd (layout 2: a message copied into the queue of each session it is for), which this version does not read: " +
	"drain the sessions with the earlier version (or export them with mqttd export), then delete the stream or use another storage.jetstream prefix")

// Open creates or updates the stream and returns a Store on it. Reads go
// through nc, which stays the caller's (Close does not close it); writes
// through a second connection of the store's own, with nc's options.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Store, error) {
	o.defaults()
	if strings.ContainsAny(o.Prefix, ".*> \t\r\n/\\") {
		return nil, fmt.Errorf("jsstore: prefix %q: must be one subject token", o.Prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsstore: %w", err)
	}
	s := &Store{nc: nc, opts: o, stream: o.Prefix + "_store", p: o.Prefix + ".store.",
		wake: make(chan struct{}, 1), done: make(chan struct{}), notify: store.NewNotifier(),
		known: map[string]known{}, hints: map[string]scanHint{},
		quit: make(chan struct{}), reclaimDone: make(chan struct{}),
		bodies: newBodyCache(o.BodyCacheBytes, o.Metrics)}
	cfg := jetstream.StreamConfig{
		Name:        s.stream,
		Description: "mqttd persistent sessions",
		Subjects:    []string{s.p + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		// One message per subject: a write replaces a record, a
		// tombstone deletes it. Chunks are written once each.
		MaxMsgsPerSubject:  1,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		Discard:            jetstream.DiscardOld,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowMsgTTL:        true,
	}
	octx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	st, err := js.CreateOrUpdateStream(octx, cfg)
	if err != nil {
		s.notify.Close()
		return nil, fmt.Errorf("jsstore: stream %s: %w", s.stream, err)
	}
	// A server that does not know a setting leaves it out of the stream
	// it returns; without atomic batches, a batch's messages would be
	// stored one by one.
	if got := st.CachedInfo().Config; !got.AllowAtomicPublish || !got.AllowMsgTTL || !got.AllowDirect {
		s.notify.Close()
		return nil, fmt.Errorf("jsstore: stream %s: the NATS server does not support atomic batch publish and per-message TTLs (nats-server 2.12 or later is needed)", s.stream)
	}
	if s.wc, err = dialWriter(nc); err != nil {
		s.notify.Close()
		return nil, err
	}
	s.chunkBytes = max(int(s.wc.MaxPayload())*3/4, 4096)
	if err := s.checkLayout(octx); err != nil {
		s.notify.Close()
		s.wc.Close()
		return nil, err
	}
	go s.committer()
	go s.reclaimer()
	return s, nil
}

// checkLayout makes sure the stream is in this store's layout: it holds
// the layout record, or nothing yet (then the record is written). A
// stream with records but no layout record is of the previous layout.
func (s *Store) checkLayout(ctx context.Context) error {
	for range 3 {
		data, _, err := s.lastFor(ctx, s.layoutSubj())
		if err != nil {
			return err
		}
		if len(data) > 0 {
			if len(data) == 1 && data[0] == layoutV2 {
				return fmt.Errorf("jsstore: stream %s: %w", s.stream, errLayoutV2)
			}
			if len(data) != 1 || data[0] != layoutV3 {
				return fmt.Errorf("jsstore: stream %s: unknown layout %x", s.stream, data)
			}
			return nil
		}
		// Any record at all (session, head, retained message) without
		// the layout record: the stream was written by an earlier
		// version. The layout record is the first of a stream of this
		// layout: found here, another process has just written it.
		subj, seq, err := s.nextFor(ctx, s.p+">", 0)
		if err != nil {
			return err
		}
		if seq != 0 && subj == s.layoutSubj() {
			continue
		}
		if seq != 0 {
			return fmt.Errorf("jsstore: stream %s: %w", s.stream, errOldLayout)
		}
		_, err = s.publishOne(ctx, pubMsg{subj: s.layoutSubj(), data: []byte{layoutV3}, cas: true})
		if err == nil || !errors.Is(err, errConflict) {
			return err
		}
		// Another process wrote it first: read it again.
	}
	return fmt.Errorf("jsstore: stream %s: the layout record keeps changing", s.stream)
}

// Subjects. T is a client id token (see token), G a generation, B a
// bucket, N a sequence number.
func (s *Store) layoutSubj() string           { return s.p + "layout" }
func (s *Store) sessionSubj(id string) string { return s.p + "s." + token(id) }
func (s *Store) headSubj(id string) string    { return s.p + "h." + token(id) }
func (s *Store) bodiesSubj(rec string) string { return s.p + "m." + rec }
func (s *Store) retainedSubj(topic string) string {
	return s.p + "r." + token(topic)
}

// Chunks are q.T.G.B.N when they refer to body records, p.T.G.B.N when
// they hold all their messages: the body records wait for the oldest q
// chunk alone. The filters below match both (no other subject has five
// tokens).
func (s *Store) queueFilter(tok string) string { return s.p + "*." + tok + ".>" }
func (s *Store) genPrefix(tok string, gen uint64) string {
	return s.p + "*." + tok + "." + strconv.FormatUint(gen, 10) + "."
}
func (s *Store) bucketPrefix(tok string, gen, bucket uint64) string {
	return s.genPrefix(tok, gen) + strconv.FormatUint(bucket, 10) + "."
}
func (s *Store) chunkSubj(refs bool, tok string, gen, first uint64) string {
	kind := "p."
	if refs {
		kind = "q."
	}
	return s.p + kind + tok + "." + strconv.FormatUint(gen, 10) + "." + strconv.FormatUint(first/bucketSize, 10) + "." + strconv.FormatUint(first, 10)
}

// bucketSize is how many sequence numbers share the bucket token of chunk
// subjects (q.T.G.B.N, B = N/bucketSize; a chunk never spans two
// buckets). Acknowledged chunks are purged a bucket at a time, once the
// floor has left it; a Scan finds its place by the first chunk of a
// bucket.
const bucketSize = 256

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// readHead reads a session's head from the stream, never from memory:
// another process may have written the session since.
func (s *Store) readHead(ctx context.Context, id string) (head, bool, error) {
	data, _, err := s.lastFor(ctx, s.headSubj(id))
	if err != nil || len(data) == 0 {
		return newHead(1), false, err
	}
	h, err := decodeHead(data)
	return h, true, err
}

// Session returns the record of clientID, or nil when there is none.
func (s *Store) Session(clientID string) (*store.SessionRecord, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	data, _, err := s.lastFor(context.Background(), s.sessionSubj(clientID))
	if err != nil || len(data) == 0 {
		return nil, err
	}
	return store.DecodeSession(data)
}

// Sessions calls fn for every session record, in client id order. The
// records are read and sorted first (subjects are ordered by stream
// sequence, not by client id).
func (s *Store) Sessions(fn func(*store.SessionRecord) error) error {
	return eachSorted(s, "s.*", store.DecodeSession,
		func(r *store.SessionRecord) string { return r.ClientID }, fn)
}

// Retained calls fn for every retained message, in topic order.
func (s *Store) Retained(fn func(*store.MessageRecord) error) error {
	return eachSorted(s, "r.*", store.DecodeMessage,
		func(m *store.MessageRecord) string { return m.Topic }, fn)
}

// eachSorted reads every live record under the subject pattern (after the
// store's prefix), decodes them, and calls fn in the order of key.
func eachSorted[T any](s *Store, pattern string, decode func([]byte) (T, error), key func(T) string, fn func(T) error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	var all []T
	var derr error
	_, err := s.each(context.Background(), s.p+pattern, 0, s.opts.ReadBatch, func(_ string, _ uint64, data []byte) bool {
		if len(data) == 0 {
			return true
		}
		r, err := decode(data)
		if err != nil {
			derr = err
			return false
		}
		all = append(all, r)
		return true
	})
	if err = cmp.Or(err, derr); err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	for _, r := range all {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Scan returns up to limit deliveries of clientID with Seq >= from. It
// reads the head, then the chunks from the one holding the first entry
// wanted on, in stream order (which is sequence order), many per
// request; each chunk carries its entries' messages.
func (s *Store) Scan(clientID string, from uint64, limit int) ([]store.Queued, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	for range 3 {
		out, again, err := s.scan(clientID, from, limit)
		if !again {
			return out, err
		}
	}
	// Still racing purges: the queue is being acknowledged or deleted
	// by another process as fast as this one reads it.
	return nil, fmt.Errorf("jsstore: scan %q: chunks or message bodies missing (purged while read, three times, or lost)", clientID)
}

// scan is one attempt of Scan. again says that the chunks were purged
// between the head's read and theirs (another process acknowledged or
// deleted them): read the head again.
func (s *Store) scan(clientID string, from uint64, limit int) (_ []store.Queued, again bool, _ error) {
	ctx := context.Background()
	h, ok, err := s.readHead(ctx, clientID)
	if err != nil || !ok {
		return nil, false, err
	}
	from = max(from, h.floor)
	if from > h.next {
		return nil, false, nil
	}
	tok := token(clientID)
	start := uint64(0)
	s.hintMu.Lock()
	hint, hok := s.hints[clientID]
	s.hintMu.Unlock()
	batch := min(limit, s.opts.ReadBatch)
	if hok && hint.gen == h.gen && from >= hint.seq {
		start = hint.stream
		if hint.per > 1 {
			// The chunk the last page stopped in, the ones the
			// page should take, and one for good measure; more
			// are asked for if they fall short.
			batch = min(batch, 2+limit/hint.per)
		}
	} else {
		// The first chunk of from's bucket: the chunk holding from is
		// at or after it. The bucket is there, as from is live, unless
		// purged since the head was read.
		_, seq, err := s.nextFor(ctx, s.bucketPrefix(tok, h.gen, from/bucketSize)+"*", 0)
		if err != nil || seq == 0 {
			return nil, err == nil, err
		}
		start = seq
	}
	var out []store.Queued
	var refs []int   // the entries of out whose message is in a body record
	var rs []bodyRef // where each of those is
	var derr error
	last := hintFor{}
	next := from // entries below were read (a rewritten chunk comes again later)
	rewritten := false
	chunks := 0 // read for the page, with an entry in it or not
	_, err = s.each(ctx, s.genPrefix(tok, h.gen)+"*.*", start, batch, func(_ string, stream uint64, data []byte) bool {
		if len(data) == 0 {
			return true // a q chunk rewritten as a p chunk (see unpin)
		}
		chunks++
		first, es, err := decodeChunk(data)
		if err != nil {
			derr = err
			return false
		}
		for i := range es {
			seq := first + uint64(i)
			if seq > h.next {
				return false // written after the head was read
			}
			if seq < next || h.isAcked(seq) {
				continue
			}
			if es[i].gone {
				// Acknowledged since the head was read, and the
				// chunk rewritten (see unpin): read it again.
				rewritten = true
				return false
			}
			if len(out) == limit {
				last = hintFor{seq: seq, stream: stream}
				return false
			}
			d := es[i].d
			d.ClientID, d.Seq = clientID, seq
			q := store.Queued{Delivery: d}
			if es[i].rec != "" {
				// Resolved below, many records per request.
				refs = append(refs, len(out))
				rs = append(rs, bodyRef{rec: es[i].rec, idx: es[i].idx})
			} else {
				// Each Queued gets its own record, as if read separately.
				q.Msg = store.CloneMessage(es[i].msg)
			}
			out = append(out, q)
			next = seq + 1
			last = hintFor{seq: seq + 1, stream: stream}
		}
		return true
	})
	if err = cmp.Or(err, derr); err != nil || rewritten {
		return nil, rewritten && err == nil, err
	}
	if len(refs) > 0 {
		ms, missing, err := s.resolve(ctx, rs, true)
		if err != nil {
			return nil, false, err
		}
		if missing {
			// Purged since the chunk was read: its entries were
			// acknowledged, or the chunk rewritten, meanwhile.
			return nil, true, nil
		}
		for i, k := range refs {
			out[k].Msg = ms[i]
		}
	}
	if last.seq != 0 {
		s.hintMu.Lock()
		if len(s.hints) > 10000 {
			clear(s.hints)
		}
		s.hints[clientID] = scanHint{gen: h.gen, seq: last.seq, stream: last.stream, per: len(out) / max(chunks, 1)}
		s.hintMu.Unlock()
	}
	return out, false, nil
}

type hintFor struct{ seq, stream uint64 }

// QueueLen is the number of deliveries queued for clientID, as its head
// in the stream counts them.
func (s *Store) QueueLen(clientID string) (int, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	h, _, err := s.readHead(context.Background(), clientID)
	return int(h.live()), err
}

// Inflight returns clientID's outbound in-flight ids in send order.
func (s *Store) Inflight(clientID string) ([]store.InflightRecord, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	h, _, err := s.readHead(context.Background(), clientID)
	if err != nil || len(h.inflight) == 0 {
		return nil, err
	}
	store.SortInflight(h.inflight)
	return h.inflight, nil
}

// QoS2In returns clientID's inbound QoS 2 packet ids awaiting PUBREL,
// ascending.
func (s *Store) QoS2In(clientID string) ([]uint16, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	h, _, err := s.readHead(context.Background(), clientID)
	if err != nil || len(h.qos2) == 0 {
		return nil, err
	}
	return h.qos2, nil
}

// MessageCount is the number of distinct messages held for queues: the
// Enqueue operations with an entry still queued, however many queues
// hold a copy. It reads every head and queue.
func (s *Store) MessageCount() (int, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	ctx := context.Background()
	type sess struct {
		tok string
		h   head
	}
	var all []sess
	var derr error
	_, err := s.each(ctx, s.p+"h.*", 0, s.opts.ReadBatch, func(subj string, _ uint64, data []byte) bool {
		h, err := decodeHead(data)
		if err != nil {
			derr = err
			return false
		}
		all = append(all, sess{subj[strings.LastIndexByte(subj, '.')+1:], h})
		return true
	})
	if err = cmp.Or(err, derr); err != nil {
		return 0, err
	}
	bodies := map[string]bool{}
	for _, x := range all {
		if x.h.live() == 0 {
			continue
		}
		_, err := s.each(ctx, s.genPrefix(x.tok, x.h.gen)+"*.*", 0, s.opts.ReadBatch, func(_ string, _ uint64, data []byte) bool {
			if len(data) == 0 {
				return true
			}
			first, es, err := decodeChunk(data)
			if err != nil {
				derr = err
				return false
			}
			for i := range es {
				if !x.h.isAcked(first+uint64(i)) && !es[i].gone {
					bodies[es[i].body] = true
				}
			}
			return true
		})
		if err = cmp.Or(err, derr); err != nil {
			return 0, err
		}
	}
	return len(bodies), nil
}

// Close refuses further commits, waits for the queued ones and their
// callbacks, closes the write connection and leaves the caller's open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
	close(s.quit)
	<-s.reclaimDone
	s.notify.Close()
	s.wc.Close()
	return nil
}

var errTooBig = errors.New("jsstore: batch larger than the atomic batch limit")

// bodyRef is where a message queued for several sessions is: its body
// record and its place there.
type bodyRef struct {
	rec string
	idx int
}

// resolve reads the messages refs name, each record once, from the cache
// or many records per request, and returns them in the order of refs,
// each a record of its own. missing says that a record or message is not
// there (purged since the chunk naming it was read, or lost). fill keeps
// the records fetched in the cache.
func (s *Store) resolve(ctx context.Context, refs []bodyRef, fill bool) ([]*store.MessageRecord, bool, error) {
	recs := map[string][]*store.MessageRecord{}
	var subjs []string
	for _, r := range refs {
		if _, ok := recs[r.rec]; ok {
			continue
		}
		if data, ok := s.bodies.get(r.rec); ok {
			ms, err := decodeBodies(data)
			if err != nil {
				return nil, false, err
			}
			recs[r.rec] = ms
			continue
		}
		recs[r.rec] = nil
		subjs = append(subjs, s.bodiesSubj(r.rec))
	}
	for len(subjs) > 0 {
		batch := subjs[:min(len(subjs), s.opts.ReadBatch)]
		var derr error
		got := 0
		err := s.multiLast(ctx, batch, func(subj string, seq uint64, data []byte) bool {
			ms, err := decodeBodies(data)
			if err != nil {
				derr = err
				return false
			}
			rec := strings.TrimPrefix(subj, s.p+"m.")
			recs[rec] = ms
			if fill {
				s.bodies.put(rec, seq, data)
			}
			got++
			return true
		})
		if err = cmp.Or(err, derr); err != nil {
			return nil, false, err
		}
		// A batch stops at the server's byte limit: ask again for
		// the records it did not bring, until one brings none.
		rest := batch[:0:0]
		for _, subj := range batch {
			if recs[strings.TrimPrefix(subj, s.p+"m.")] == nil {
				rest = append(rest, subj)
			}
		}
		if got == 0 && len(rest) > 0 {
			return nil, true, nil
		}
		subjs = append(rest, subjs[len(batch):]...)
	}
	out := make([]*store.MessageRecord, len(refs))
	for i, r := range refs {
		ms := recs[r.rec]
		if r.idx >= len(ms) {
			return nil, true, nil
		}
		out[i] = store.CloneMessage(ms[r.idx])
	}
	return out, false, nil
}
