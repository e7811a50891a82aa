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
	// Logger for failures after a commit (reclaiming a deleted session's
	// queue); default slog.Default().
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
}

// Store is a store.Store on a JetStream stream. All methods are safe for
// concurrent use; several Stores (in several processes) may share the
// stream.
type Store struct {
	nc     *nats.Conn
	opts   Options
	stream string
	p      string // subject prefix, "<prefix>.store."

	mu     sync.Mutex
	closed bool
	reqs   []*commitReq
	wake   chan struct{}
	done   chan struct{}
	notify *store.Notifier

	// Owned by the committer goroutine: the last known value and stream
	// sequence of subjects written with compare-and-set.
	known map[string]known

	hintMu sync.Mutex
	hints  map[string]scanHint // by client id
}

// scanHint is a lower bound kept from the last Scan of a session: its
// entries from seq on (in generation gen) are at stream sequence at or
// after stream. It stays true as entries are added and removed, so paging
// through a long queue does not search for its place again.
type scanHint struct {
	gen, seq, stream uint64
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Counter = (*Store)(nil)
)

// Open creates or updates the stream and returns a Store on it. The
// connection stays the caller's: Close does not close it.
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
		known: map[string]known{}, hints: map[string]scanHint{}}
	cfg := jetstream.StreamConfig{
		Name:        s.stream,
		Description: "mqttd persistent sessions",
		Subjects:    []string{s.p + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		// One message per subject: a write replaces the record, a
		// tombstone deletes it; the batch stays the unit of change.
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
	go s.committer()
	return s, nil
}

// Subjects. T is a client id token (see token), G a generation, N a
// sequence number, P a packet id, ID a message body id.
func (s *Store) sessionSubj(id string) string { return s.p + "s." + token(id) }
func (s *Store) headSubj(id string) string    { return s.p + "h." + token(id) }
func (s *Store) retainedSubj(topic string) string {
	return s.p + "r." + token(topic)
}
func (s *Store) bodySubj(id string) string  { return s.p + "m." + id }
func (s *Store) countSubj(id string) string { return s.p + "c." + id }
func (s *Store) genPrefix(kind, id string, gen uint64) string {
	return s.p + kind + "." + token(id) + "." + strconv.FormatUint(gen, 10) + "."
}
func (s *Store) entrySubj(id string, gen, seq uint64) string {
	return s.bucketPrefix(id, gen, seq/bucketSize) + strconv.FormatUint(seq, 10)
}

// bucketSize is how many sequence numbers share the bucket token of entry
// subjects (q.T.G.B.N, B = N/bucketSize). A batched read makes the server
// count what matches its filter; a bucket keeps that count to bucketSize
// subjects however long the queue.
const bucketSize = 1024

func (s *Store) bucketPrefix(id string, gen, bucket uint64) string {
	return s.genPrefix("q", id, gen) + strconv.FormatUint(bucket, 10) + "."
}

// eachEntry calls fn for the entry subjects of generation gen of a queue,
// tombstones included, from bucket first to the one of seq last, in
// sequence order, reading from stream sequence start on (a lower bound of
// where they are), asking for want at a time. It stops when fn returns
// false.
func (s *Store) eachEntry(ctx context.Context, id string, gen, first, last, start uint64, want int, fn func(subj string, stream uint64, data []byte) bool) error {
	stop := false
	wrap := func(subj string, stream uint64, data []byte) bool {
		stop = !fn(subj, stream, data)
		return !stop
	}
	for b := first; b <= last/bucketSize && !stop; b++ {
		n := 0
		_, err := s.each(ctx, s.bucketPrefix(id, gen, b)+"*", start, want, func(subj string, stream uint64, data []byte) bool {
			n++
			return wrap(subj, stream, data)
		})
		if err != nil || stop {
			return err
		}
		if n > 0 {
			continue
		}
		// An empty bucket: skip to the bucket of the next entry
		// subject at all (one unbatched read, which counts nothing).
		// A tombstone of an earlier bucket may answer: then just go on.
		subj, seq, err := s.nextFor(ctx, s.genPrefix("q", id, gen)+"*.*", start)
		if err != nil || seq == 0 {
			return err
		}
		parts := strings.Split(subj, ".")
		if nb, err := strconv.ParseUint(parts[len(parts)-2], 10, 64); err == nil && nb > b+1 {
			b = nb - 1
		}
		start = seq
	}
	return nil
}
func (s *Store) pidSubj(kind, id string, gen uint64, pid uint16) string {
	return s.genPrefix(kind, id, gen) + strconv.FormatUint(uint64(pid), 10)
}

// lastToken is the last token of a subject, as a number.
func lastToken(subj string) (uint64, error) {
	n, err := strconv.ParseUint(subj[strings.LastIndexByte(subj, '.')+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: subject %q", store.ErrCorrupt, subj)
	}
	return n, nil
}

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
		return head{gen: 1}, false, err
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
// reads the queue's entries by subject (scanLiteral), or across a gap in
// stream order (scanStream), then their bodies in one request per page:
// nothing beyond the page is held in memory.
func (s *Store) Scan(clientID string, from uint64, limit int) ([]store.Queued, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx := context.Background()
	h, ok, err := s.readHead(ctx, clientID)
	if err != nil || !ok {
		return nil, err
	}
	page, from, done, err := s.scanLiteral(ctx, clientID, h, max(from, 1), limit)
	if err != nil {
		return nil, err
	}
	if !done {
		lower := uint64(0) // past what this Scan has read already
		if len(page) > 0 {
			lower = page[len(page)-1].stream + 1
		}
		more, err := s.scanStream(ctx, clientID, h, from, lower, limit-len(page))
		if err != nil {
			return nil, err
		}
		page = append(page, more...)
	}
	if len(page) == 0 {
		return nil, nil
	}
	last := page[len(page)-1]
	s.hintMu.Lock()
	if len(s.hints) > 10000 {
		clear(s.hints)
	}
	s.hints[clientID] = scanHint{gen: h.gen, seq: last.seq + 1, stream: last.stream + 1}
	s.hintMu.Unlock()

	var derr error
	bodies := map[string]*store.MessageRecord{}
	var subjects []string
	for _, f := range page {
		if _, ok := bodies[f.e.body]; !ok {
			bodies[f.e.body] = nil
			subjects = append(subjects, s.bodySubj(f.e.body))
		}
	}
	for chunk := range slices.Chunk(subjects, s.opts.ReadBatch) {
		err := s.multiLast(ctx, chunk, func(subj string, _ uint64, data []byte) bool {
			if len(data) == 0 {
				return true
			}
			m, err := store.DecodeMessage(data)
			if err != nil {
				derr = err
				return false
			}
			bodies[strings.TrimPrefix(subj, s.p+"m.")] = m
			return true
		})
		if err = cmp.Or(err, derr); err != nil {
			return nil, err
		}
	}
	out := make([]store.Queued, 0, len(page))
	for _, f := range page {
		m := bodies[f.e.body]
		if m == nil {
			// Acknowledged between the two reads (its body went with
			// the last reference), or damage: the entry says which.
			data, _, err := s.lastFor(ctx, s.entrySubj(clientID, h.gen, f.seq))
			if err != nil {
				return nil, err
			}
			if len(data) == 0 {
				continue
			}
			return nil, fmt.Errorf("%w: %s seq %d references missing message %s", store.ErrCorrupt, clientID, f.seq, f.e.body)
		}
		d := f.e.d
		d.ClientID, d.Seq = clientID, f.seq
		// Each Queued gets its own record, as if read separately.
		out = append(out, store.Queued{Delivery: d, Msg: store.CloneMessage(m)})
	}
	return out, nil
}

// QueueLen is the number of deliveries queued for clientID, as its head
// in the stream counts them.
func (s *Store) QueueLen(clientID string) (int, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	h, _, err := s.readHead(context.Background(), clientID)
	return int(h.live), err
}

// Inflight returns clientID's outbound in-flight ids in send order.
func (s *Store) Inflight(clientID string) ([]store.InflightRecord, error) {
	var out []store.InflightRecord
	err := s.eachPid("i", clientID, func(pid uint16, data []byte) error {
		r, err := decodeInflight(data)
		if err == nil && r.PacketID != pid {
			err = fmt.Errorf("%w: in-flight record %d on the subject of %d", store.ErrCorrupt, r.PacketID, pid)
		}
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	store.SortInflight(out)
	return out, nil
}

// QoS2In returns clientID's inbound QoS 2 packet ids awaiting PUBREL,
// ascending.
func (s *Store) QoS2In(clientID string) ([]uint16, error) {
	var out []uint16
	err := s.eachPid("2", clientID, func(pid uint16, data []byte) error {
		if len(data) != 1 || data[0] != qos2V1 {
			return fmt.Errorf("%w: QoS 2 record %x", store.ErrCorrupt, data)
		}
		out = append(out, pid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// eachPid calls fn for the live packet id records of one kind of the
// session's current generation.
func (s *Store) eachPid(kind, clientID string, fn func(pid uint16, data []byte) error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	ctx := context.Background()
	h, ok, err := s.readHead(ctx, clientID)
	if err != nil || !ok {
		return err
	}
	var ferr error
	_, err = s.each(ctx, s.genPrefix(kind, clientID, h.gen)+"*", 0, s.opts.ReadBatch, func(subj string, _ uint64, data []byte) bool {
		if len(data) == 0 {
			return true
		}
		pid, err := lastToken(subj)
		if err == nil && (pid == 0 || pid > 0xFFFF) {
			err = fmt.Errorf("%w: packet id subject %q", store.ErrCorrupt, subj)
		}
		if err == nil {
			err = fn(uint16(pid), data)
		}
		ferr = err
		return err == nil
	})
	return cmp.Or(err, ferr)
}

// MessageCount is the number of message bodies held for queues: the live
// reference counts, one per body.
func (s *Store) MessageCount() (int, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	ctx := context.Background()
	n := 0
	_, err := s.each(ctx, s.p+"c.*", 0, s.opts.ReadBatch, func(_ string, _ uint64, data []byte) bool {
		if len(data) > 0 {
			n++
		}
		return true
	})
	return n, err
}

// Close refuses further commits, waits for the queued ones and their
// callbacks, and leaves the connection open.
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
	s.notify.Close()
	return nil
}

var errTooBig = errors.New("jsstore: batch larger than the atomic batch limit")

// foundEntry is a live queue entry read by Scan: its sequence number and
// stream sequence.
type foundEntry struct {
	e      entry
	seq    uint64
	stream uint64
}

// scanLiteral reads the entries from seq on by their subjects, which it
// knows (q.T.G.B.N for N from seq to the head's last): one multi-subject
// request per window of up to limit sequence numbers, which the server
// answers from its subject index without walking the stream. A window
// with no live entry in it means a gap (entries acknowledged out of
// order): it then stops, returning done false and the first sequence
// number not looked at, for scanStream to find the next entry in stream
// order instead of asking for every number of the gap.
func (s *Store) scanLiteral(ctx context.Context, id string, h head, seq uint64, limit int) ([]foundEntry, uint64, bool, error) {
	var page []foundEntry
	for len(page) < limit && seq <= h.next {
		n := min(uint64(min(limit-len(page), s.opts.ReadBatch)), h.next-seq+1)
		subjects := make([]string, n)
		for i := range subjects {
			subjects[i] = s.entrySubj(id, h.gen, seq+uint64(i))
		}
		var got []foundEntry
		var derr error
		err := s.multiLast(ctx, subjects, func(subj string, stream uint64, data []byte) bool {
			if len(data) == 0 {
				return true
			}
			q, err := lastToken(subj)
			if err == nil {
				var e entry
				if e, err = decodeEntry(data); err == nil {
					got = append(got, foundEntry{e, q, stream})
				}
			}
			derr = err
			return err == nil
		})
		if err = cmp.Or(err, derr); err != nil {
			return nil, seq, false, err
		}
		seq += n
		if len(got) == 0 {
			return page, seq, false, nil
		}
		slices.SortFunc(got, func(a, b foundEntry) int { return cmp.Compare(a.seq, b.seq) })
		page = append(page, got...)
	}
	return page, seq, true, nil
}

// scanStream reads up to limit entries from sequence number from on in
// stream order (which is sequence order), from a known lower bound of
// their place: lower, where the last Scan stopped, or the entry from
// itself.
func (s *Store) scanStream(ctx context.Context, clientID string, h head, from, lower uint64, limit int) ([]foundEntry, error) {
	if limit <= 0 || from > h.next {
		return nil, nil
	}
	start := uint64(0)
	s.hintMu.Lock()
	hint, hok := s.hints[clientID]
	s.hintMu.Unlock()
	if hok && hint.gen == h.gen && from >= hint.seq {
		start = hint.stream
	} else if lower == 0 && from > 1 {
		if data, seq, err := s.lastFor(ctx, s.entrySubj(clientID, h.gen, from)); err != nil {
			return nil, err
		} else if len(data) > 0 {
			start = seq
		}
	}
	start = max(start, lower)
	var page []foundEntry
	var derr error
	err := s.eachEntry(ctx, clientID, h.gen, from/bucketSize, h.next, start, limit, func(subj string, stream uint64, data []byte) bool {
		if len(data) == 0 {
			return true
		}
		seq, err := lastToken(subj)
		if err != nil {
			derr = err
			return false
		}
		if seq < from {
			return true
		}
		e, err := decodeEntry(data)
		if err != nil {
			derr = err
			return false
		}
		page = append(page, foundEntry{e, seq, stream})
		return len(page) < limit
	})
	return page, cmp.Or(err, derr)
}
