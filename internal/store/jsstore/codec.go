package jsstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/mqttd/mqttd/internal/store"
)

// Record encodings private to this store, in the store's wire primitives.
// Every live record is at least one byte long, so an empty message on a
// subject is a tombstone. Version 1 was the layout of one subject per
// queue entry, packet id and reference count, version 2 the layout that
// stored a message in each chunk it was queued in; this store refuses
// both (see checkLayout). Heads did not change from version 2.

const (
	headV2   = 2
	chunkV2  = 2 // refused: layout 2 copied a message into each session's chunk
	chunkV3  = 3
	bodiesV3 = 3
	layoutV2 = 2 // refused (see checkLayout)
	layoutV3 = 3
)

// span is a run of acknowledged sequence numbers, lo to hi inclusive.
type span struct{ lo, hi uint64 }

// head is a session's state apart from its record and its queued
// messages: the generation (bumped by DeleteSession, so that the old
// queue stops counting at once), the last sequence number handed out, the
// floor (every entry below it is acknowledged), the entries at or above
// the floor acknowledged out of order, and the outbound in-flight and
// inbound QoS 2 packet ids. An acknowledgement changes the head only: the
// queue's chunks are never rewritten, and are purged a bucket at a time
// once the floor has passed them.
type head struct {
	gen, next, floor uint64
	acked            []span                 // ascending, disjoint, not touching each other nor the floor
	inflight         []store.InflightRecord // by packet id
	qos2             []uint16               // ascending
}

func newHead(gen uint64) head { return head{gen: gen, floor: 1} }

// live is the number of entries queued: handed out, at or above the floor,
// not acknowledged.
func (h *head) live() uint64 {
	n := h.next + 1 - h.floor
	for _, s := range h.acked {
		n -= s.hi - s.lo + 1
	}
	return n
}

// isAcked says whether seq is no longer queued.
func (h *head) isAcked(seq uint64) bool {
	if seq < h.floor || seq > h.next {
		return true
	}
	_, found := slices.BinarySearchFunc(h.acked, seq, func(s span, q uint64) int {
		switch {
		case s.hi < q:
			return -1
		case s.lo > q:
			return 1
		}
		return 0
	})
	return found
}

// ack acknowledges seq, reporting whether it was queued.
func (h *head) ack(seq uint64) bool {
	if h.isAcked(seq) {
		return false
	}
	i, _ := slices.BinarySearchFunc(h.acked, seq, func(s span, q uint64) int {
		if s.hi < q {
			return -1
		}
		return 1
	})
	// h.acked[i-1] ends below seq, h.acked[i] starts above it.
	joinPrev := i > 0 && h.acked[i-1].hi+1 == seq
	joinNext := i < len(h.acked) && h.acked[i].lo == seq+1
	switch {
	case joinPrev && joinNext:
		h.acked[i-1].hi = h.acked[i].hi
		h.acked = slices.Delete(h.acked, i, i+1)
	case joinPrev:
		h.acked[i-1].hi = seq
	case joinNext:
		h.acked[i].lo = seq
	default:
		h.acked = slices.Insert(h.acked, i, span{seq, seq})
	}
	if len(h.acked) > 0 && h.acked[0].lo == h.floor {
		h.floor = h.acked[0].hi + 1
		h.acked = h.acked[1:]
	}
	return true
}

func (h *head) setInflight(r store.InflightRecord) {
	i, found := slices.BinarySearchFunc(h.inflight, r.PacketID, func(x store.InflightRecord, p uint16) int { return int(x.PacketID) - int(p) })
	if found {
		h.inflight[i] = r
		return
	}
	h.inflight = slices.Insert(h.inflight, i, r)
}

func (h *head) clearInflight(pid uint16) bool {
	i, found := slices.BinarySearchFunc(h.inflight, pid, func(x store.InflightRecord, p uint16) int { return int(x.PacketID) - int(p) })
	if found {
		h.inflight = slices.Delete(h.inflight, i, i+1)
	}
	return found
}

func (h *head) addQoS2(pid uint16) bool {
	i, found := slices.BinarySearch(h.qos2, pid)
	if !found {
		h.qos2 = slices.Insert(h.qos2, i, pid)
	}
	return !found
}

func (h *head) removeQoS2(pid uint16) bool {
	i, found := slices.BinarySearch(h.qos2, pid)
	if found {
		h.qos2 = slices.Delete(h.qos2, i, i+1)
	}
	return found
}

func (h head) clone() head {
	h.acked = slices.Clone(h.acked)
	h.inflight = slices.Clone(h.inflight)
	h.qos2 = slices.Clone(h.qos2)
	return h
}

func appendHead(dst []byte, h *head) []byte {
	e := store.Encoder{B: dst}
	e.Byte(headV2)
	e.Uvarint(h.gen)
	e.Uvarint(h.next)
	e.Uvarint(h.floor)
	e.Uvarint(uint64(len(h.acked)))
	prev := h.floor
	for _, s := range h.acked {
		e.Uvarint(s.lo - prev)
		e.Uvarint(s.hi - s.lo)
		prev = s.hi
	}
	e.Uvarint(uint64(len(h.inflight)))
	for _, r := range h.inflight {
		e.Uvarint(uint64(r.PacketID))
		e.Uvarint(r.Seq)
		e.Byte(byte(r.State))
	}
	e.Uvarint(uint64(len(h.qos2)))
	for _, p := range h.qos2 {
		e.Uvarint(uint64(p))
	}
	return e.B
}

func decodeHead(b []byte) (head, error) {
	d := store.Decoder{B: b, What: "session head"}
	if len(b) > 0 && b[0] == 1 {
		return head{}, fmt.Errorf("%w: a session head of the previous layout (version 1): %s", store.ErrCorrupt, errOldLayout)
	}
	d.Version(headV2)
	h := head{gen: d.Uvarint(), next: d.Uvarint(), floor: d.Uvarint()}
	prev := h.floor
	for range d.Count(2) {
		lo := prev + d.Uvarint()
		hi := lo + d.Uvarint()
		if d.Err() == nil && (lo <= prev || hi > h.next || hi < lo) {
			return head{}, fmt.Errorf("%w: session head: acknowledged span %d-%d out of order", store.ErrCorrupt, lo, hi)
		}
		h.acked = append(h.acked, span{lo, hi})
		prev = hi
	}
	for range d.Count(3) {
		pid := d.Uvarint()
		r := store.InflightRecord{Seq: d.Uvarint(), State: store.InflightState(d.Byte())}
		if d.Err() == nil && (pid == 0 || pid > 0xFFFF || len(h.inflight) > 0 && uint64(h.inflight[len(h.inflight)-1].PacketID) >= pid) {
			return head{}, fmt.Errorf("%w: session head: in-flight packet id %d", store.ErrCorrupt, pid)
		}
		r.PacketID = uint16(pid)
		h.inflight = append(h.inflight, r)
	}
	for range d.Count(1) {
		pid := d.Uvarint()
		if d.Err() == nil && (pid == 0 || pid > 0xFFFF || len(h.qos2) > 0 && uint64(h.qos2[len(h.qos2)-1]) >= pid) {
			return head{}, fmt.Errorf("%w: session head: QoS 2 packet id %d", store.ErrCorrupt, pid)
		}
		h.qos2 = append(h.qos2, uint16(pid))
	}
	if err := d.Finish(); err != nil {
		return head{}, err
	}
	if h.gen == 0 || h.floor == 0 || h.floor > h.next+1 {
		return head{}, fmt.Errorf("%w: session head: generation %d, floor %d, next %d", store.ErrCorrupt, h.gen, h.floor, h.next)
	}
	return h, nil
}

// entry is one queued delivery with its message. body names the Enqueue
// it came from, so that the messages a queue holds can be counted once
// however many queues hold them. A message queued for several sessions is
// not in the chunk but in a body record of the same publish: rec and idx
// name it there (msg is nil until the record is read). An entry
// acknowledged when its chunk was rewritten (see unpin) keeps its place
// without a message: gone.
type entry struct {
	body   string
	msg    *store.MessageRecord
	d      store.Delivery
	shared bool   // queued for several sessions: stored in a body record
	rec    string // the body record's id (subject m.<rec>), "" when inline
	idx    int    // the message's place in that record
	gone   bool
}

// size is about what e takes in a chunk.
func (x *entry) size() int {
	n := 48 + len(x.body) + len(x.d.Group) + 5*len(x.d.SubIDs)
	if x.shared || x.gone {
		return n + len(x.body) + 8
	}
	return n + x.msgSize()
}

// msgSize is about what e's message takes.
func (x *entry) msgSize() int {
	m := x.msg
	return 16 + len(m.Topic) + len(m.Payload) + len(m.From) + len(m.Props)
}

// Kinds of chunk entries.
const (
	kindInline = 0 // the message follows
	kindRef    = 1 // in a body record: its index in the chunk's table, its place there
	kindGone   = 2 // acknowledged when the chunk was rewritten: no message
)

// A chunk is the entries one commit queued for one session within one
// bucket: consecutive sequence numbers from first. It starts with the
// table of the body records its entries refer to; each entry carries its
// delivery and its message inline, a reference into a body record, or
// (an entry of an Enqueue naming the session twice) a reference back to
// an earlier entry of the chunk.
func appendChunk(dst []byte, first uint64, es []entry) []byte {
	e := store.Encoder{B: dst}
	e.Byte(chunkV3)
	e.Uvarint(first)
	var recs []string
	for i := range es {
		if r := es[i].rec; r != "" && !slices.Contains(recs, r) {
			recs = append(recs, r)
		}
	}
	e.Uvarint(uint64(len(recs)))
	for _, r := range recs {
		e.String(r)
	}
	e.Uvarint(uint64(len(es)))
	// last holds, for each body, the last entry so far with it that is
	// not acknowledged: an entry refers back to it.
	last := make(map[string]int)
	for i := range es {
		x := &es[i]
		e.Byte(x.d.QoS)
		e.Bool(x.d.Retain)
		e.Uvarint(uint64(len(x.d.SubIDs)))
		for _, id := range x.d.SubIDs {
			e.Uvarint(uint64(id))
		}
		e.String(x.d.Group)
		back := 0
		if !x.gone {
			if j, ok := last[x.body]; ok {
				back = i - j
			}
			last[x.body] = i
		}
		e.Uvarint(uint64(back))
		if back > 0 {
			continue
		}
		e.String(x.body)
		switch {
		case x.gone:
			e.Byte(kindGone)
		case x.rec != "":
			e.Byte(kindRef)
			e.Uvarint(uint64(slices.Index(recs, x.rec)))
			e.Uvarint(uint64(x.idx))
		default:
			e.Byte(kindInline)
			e.Bytes(store.AppendMessage(nil, x.msg))
		}
	}
	return e.B
}

func decodeChunk(b []byte) (uint64, []entry, error) {
	d := store.Decoder{B: b, What: "queue chunk"}
	if len(b) > 0 && b[0] == chunkV2 {
		return 0, nil, fmt.Errorf("%w: a queue chunk of the previous layout (version 2): %s", store.ErrCorrupt, errLayoutV2)
	}
	d.Version(chunkV3)
	first := d.Uvarint()
	recs := make([]string, d.Count(1))
	for i := range recs {
		recs[i] = d.String()
	}
	es := make([]entry, d.Count(5))
	for i := range es {
		x := &es[i]
		x.d.QoS = d.QoS()
		x.d.Retain = d.Bool()
		if n := d.Count(1); n > 0 {
			x.d.SubIDs = make([]uint32, n)
			for k := range x.d.SubIDs {
				x.d.SubIDs[k] = d.Uint32()
			}
		}
		x.d.Group = d.String()
		back := d.Uvarint()
		if d.Err() != nil {
			break
		}
		if back > uint64(i) {
			return 0, nil, fmt.Errorf("%w: queue chunk: entry %d refers to entry %d before the first", store.ErrCorrupt, i, int(i)-int(back))
		}
		if back > 0 {
			y := &es[i-int(back)]
			x.body, x.msg, x.rec, x.idx = y.body, y.msg, y.rec, y.idx
			continue
		}
		x.body = d.String()
		switch kind := d.Byte(); kind {
		case kindGone:
			x.gone = true
		case kindRef:
			r, idx := d.Uvarint(), d.Uvarint()
			if d.Err() == nil && (r >= uint64(len(recs)) || idx > 1<<31) {
				return 0, nil, fmt.Errorf("%w: queue chunk: entry %d refers to body record %d of %d", store.ErrCorrupt, i, r, len(recs))
			}
			if d.Err() == nil {
				x.rec, x.idx = recs[r], int(idx)
			}
		case kindInline:
			raw := d.Bytes()
			if d.Err() != nil {
				break
			}
			m, err := store.DecodeMessage(raw)
			if err != nil {
				return 0, nil, err
			}
			x.msg = m
		default:
			if d.Err() == nil {
				return 0, nil, fmt.Errorf("%w: queue chunk: entry %d of kind %d", store.ErrCorrupt, i, kind)
			}
		}
	}
	if err := d.Finish(); err != nil {
		return 0, nil, err
	}
	if first == 0 {
		return 0, nil, fmt.Errorf("%w: queue chunk from sequence number 0", store.ErrCorrupt)
	}
	return first, es, nil
}

// A body record holds the messages of one publish that were queued for
// several sessions, each once; the chunks of the same publish refer to
// them by the record's id and their place in it.
func appendBodies(dst []byte, ms []*store.MessageRecord) []byte {
	e := store.Encoder{B: dst}
	e.Byte(bodiesV3)
	e.Uvarint(uint64(len(ms)))
	for _, m := range ms {
		e.Bytes(store.AppendMessage(nil, m))
	}
	return e.B
}

func decodeBodies(b []byte) ([]*store.MessageRecord, error) {
	d := store.Decoder{B: b, What: "body record"}
	d.Version(bodiesV3)
	ms := make([]*store.MessageRecord, d.Count(1))
	for i := range ms {
		raw := d.Bytes()
		if d.Err() != nil {
			break
		}
		m, err := store.DecodeMessage(raw)
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return ms, nil
}

// maxToken bounds a subject token: NATS carries the subject on the
// protocol line, which servers limit (4 KiB by default), and a client id
// or topic may be up to 64 KiB. Longer keys are hashed; the record on the
// subject still holds the original.
const maxToken = 128

const hexDigits = "0123456789ABCDEF"

// token encodes s as one subject token, the cluster's way: letters, digits
// and '-' stay, every other byte becomes '_' and two hex digits, and the
// empty string is a lone '_'. Injective, so distinct ids never share
// subjects; over maxToken bytes it is '~' and the SHA-256 of s, which the
// plain encoding never produces.
func token(s string) string {
	if s == "" {
		return "_"
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			b = append(b, c)
		} else {
			b = append(b, '_', hexDigits[c>>4], hexDigits[c&0xf])
		}
		if len(b) > maxToken {
			sum := sha256.Sum256([]byte(s))
			return "~" + hex.EncodeToString(sum[:])
		}
	}
	return string(b)
}
