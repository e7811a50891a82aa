package cluster

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// outbox gathers the messages this node forwards into batches, one per
// topic, which sendLoop hands to NATS when it wakes: under load messages
// gather while it sends, so a busy publisher's read batch crosses as a few
// NATS messages and is confirmed by a few answers. Nothing waits for a
// batch to fill: a lone message leaves as soon as sendLoop runs.
//
// Batching is per topic so that everything else stays as with one NATS
// message per message: the topic's subject reaches exactly the nodes NATS
// knows to subscribe (the interest table is not trusted for who gets a
// message, only for skipping NATS and for whose answer to wait for), the
// receiving node routes it from its canonical subscription, and a shared
// group's queue takes it. Messages of one topic keep their order: they are
// appended in the order Forward is called and batches leave in the order
// they were opened.
type outbox struct {
	n    *Node
	mu   sync.Mutex
	list []*outBatch          // open batches, in the order they were opened
	open map[string]*outBatch // by topic: the one the next message of that topic joins
	wake chan struct{}
	free []*outBatch // sent, for reuse; under mu
	// limit is the size a batch is closed at: batchTarget, or NATS's
	// max_payload when smaller (a batch above it would be refused whole).
	// Under mu; read again from the connection as batches are sent.
	limit int
}

// outBatch is one NATS message being filled.
type outBatch struct {
	topic  string
	subj   []byte // the topic's NATS subject
	data   []byte // envelopeBatch, then length-prefixed envelopes
	count  int    // messages in data
	expect []string
	dones  []func(error) // of the QoS 1/2 messages that wait for expect
	// at is the time its messages entered the cluster, read once when it
	// opened: they all join it before sendLoop next runs, and a reading of
	// the clock per message was a good part of what forwarding one cost.
	at time.Time
}

// batchTarget is the size a batch is closed at: large enough that a busy
// topic's read batch fits, small enough to stay well inside NATS's
// max_payload (1 MiB by default) and to leave quickly.
const batchTarget = 64 << 10

func newOutbox(n *Node) *outbox {
	o := &outbox{n: n, open: make(map[string]*outBatch), wake: make(chan struct{}, 1)}
	o.limit = o.sizeLimit()
	return o
}

// sizeLimit is what limit should be now.
func (o *outbox) sizeLimit() int {
	if mp := o.n.nc.MaxPayload(); mp > 0 && mp < batchTarget {
		return int(mp)
	}
	return batchTarget
}

// add appends one message to its topic's open batch, opening one when
// there is none, when it is full, or when the message waits for other
// nodes than the batch's (the table changed meanwhile). expect is not
// kept: it is copied when a batch takes it.
func (o *outbox) add(topic string, payload []byte, qos byte, retain bool, from string, props *packets.Properties,
	expect []string, done func(error)) error {
	// A message that would take a batch past its limit starts the next
	// one: a large message leaves alone, and does not make NATS refuse
	// the messages batched with it. The envelope adds a few dozen bytes.
	size := len(topic) + len(payload) + len(from) + 64
	if props != nil {
		size += props.Size()
	}
	o.mu.Lock()
	b := o.open[topic]
	if b != nil && (b.count > 0 && len(b.data)+size > o.limit ||
		done != nil && len(b.dones) > 0 && !slices.Equal(b.expect, expect)) {
		b = nil
	}
	opened := b == nil
	if opened {
		var err error
		if b, err = o.openLocked(topic); err != nil {
			o.mu.Unlock()
			return err
		}
	}
	at := len(b.data)
	data, err := appendEnvelope(append(b.data, 0, 0, 0, 0), topic, payload, qos, retain, from, b.at, props)
	if err != nil {
		b.data = data[:at]
		o.mu.Unlock()
		return err
	}
	binary.BigEndian.PutUint32(data[at:], uint32(len(data)-at-batchLenSize))
	b.data = data
	b.count++
	if done != nil {
		if len(b.dones) == 0 {
			b.expect = append(b.expect[:0], expect...)
			if b.dones == nil {
				b.dones = getDones()
			}
		}
		b.dones = append(b.dones, done)
	}
	o.mu.Unlock()
	// A batch found open is in the list sendLoop takes next: the wake-up
	// its opener left (or is about to leave) brings sendLoop to it.
	if opened {
		poke(o.wake)
	}
	return nil
}

// freeDones recycles the slices of dones a batch hands to its wait (and
// the wait drops once it has called them): grown afresh for every batch,
// they were most of what forwarding allocated.
var freeDones struct {
	mu   sync.Mutex
	list [][]func(error)
}

// maxFreeDones bounds the slices kept, and maxDonesCap their size.
const maxFreeDones, maxDonesCap = 64, 4096

// getDones returns an empty slice of dones, with room when one was given
// back.
func getDones() []func(error) {
	f := &freeDones
	f.mu.Lock()
	defer f.mu.Unlock()
	k := len(f.list)
	if k == 0 {
		return nil
	}
	d := f.list[k-1]
	f.list[k-1] = nil
	f.list = f.list[:k-1]
	return d
}

// putDones gives back a slice of dones that nothing uses any more.
func putDones(d []func(error)) {
	if cap(d) == 0 || cap(d) > maxDonesCap {
		return
	}
	clear(d)
	f := &freeDones
	f.mu.Lock()
	if len(f.list) < maxFreeDones {
		f.list = append(f.list, d[:0])
	}
	f.mu.Unlock()
}

// openLocked opens a batch for topic. Caller holds o.mu.
func (o *outbox) openLocked(topic string) (*outBatch, error) {
	var b *outBatch
	if k := len(o.free); k > 0 {
		b, o.free = o.free[k-1], o.free[:k-1]
	} else {
		b = new(outBatch)
	}
	subj := append(b.subj[:0], o.n.opts.Prefix...)
	subj = append(subj, ".m."...)
	subj = appendTopic(subj, topic)
	if len(subj) > maxSubject {
		b.subj = subj
		o.free = append(o.free, b)
		return nil, errSubjectTooLong
	}
	b.subj = subj
	b.topic = strings.Clone(topic)
	b.at = time.Now()
	b.data = append(b.data[:0], envelopeBatch)
	o.list = append(o.list, b)
	o.open[b.topic] = b
	return b, nil
}

// sendLoop hands the open batches to NATS whenever there are some, and
// once more when the node closes: a closing broker's wills are forwarded
// before the node's Close.
func (o *outbox) sendLoop() {
	n := o.n
	defer n.wg.Done()
	var batches []*outBatch
	for {
		select {
		case <-n.ctx.Done():
			o.sendOpen(batches)
			return
		case <-o.wake:
		}
		batches = o.sendOpen(batches)
	}
}

// maxFreeBatches bounds the batches kept for reuse (of at most twice
// batchTarget each): a burst over many topics leaves no lasting memory.
const maxFreeBatches = 64

// sendOpen sends the open batches, using and returning batches (empty) as
// room for the list.
func (o *outbox) sendOpen(batches []*outBatch) []*outBatch {
	limit := o.sizeLimit() // outside mu: it takes the connection's lock
	o.mu.Lock()
	o.limit = limit
	batches, o.list = o.list, batches[:0]
	if len(o.open) > 4*maxFreeBatches {
		o.open = make(map[string]*outBatch) // clear would keep its size
	} else {
		clear(o.open)
	}
	o.mu.Unlock()
	for _, b := range batches {
		o.send(b)
	}
	o.mu.Lock()
	for _, b := range batches {
		if len(o.free) < maxFreeBatches && cap(b.data) <= 2*batchTarget {
			o.free = append(o.free, b)
		}
	}
	o.mu.Unlock()
	clear(batches)
	return batches[:0]
}

// send publishes one batch; its QoS 1/2 messages wait for the nodes it
// expects to answer (confirms), or are refused at once when NATS would
// not take it.
func (o *outbox) send(b *outBatch) {
	n := o.n
	// nats.go copies the subject into its write buffer before Publish
	// returns: a view of the batch's buffer saves an allocation.
	subj := unsafe.String(unsafe.SliceData(b.subj), len(b.subj))
	var err error
	var id uint64
	if len(b.dones) > 0 {
		var reply string
		// The wait keeps topic, nodes and dones: the batch gets new ones.
		id, reply = n.confirms.expect(b.topic, b.expect, b.dones)
		b.expect, b.dones = nil, nil
		err = n.nc.PublishMsg(&nats.Msg{Subject: subj, Reply: reply, Data: b.data})
	} else {
		err = n.nc.Publish(subj, b.data)
	}
	if err != nil {
		n.stats.ForwardFailed.Add(int64(b.count))
		n.warnForward.warn(n.log, "cluster: messages not forwarded to other nodes", "topic", b.topic,
			"messages", b.count, "err", err)
		if id != 0 {
			n.confirms.finish(id, mqtt.ErrForwardUnconfirmed)
		}
	}
	b.topic, b.count = "", 0
}
