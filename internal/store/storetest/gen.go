package storetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// A small id space, so that operations collide: the same session
// re-written, acknowledged, deleted while holding references.
var (
	clients = []string{"c0", "c1", "c2", "c\x00/3"}
	topics  = []string{"a", "a/b", "$SYS/x", "t é"}
)

// gen draws random operations. Each op is a closure so that the model and
// the store under test get equal but separate records and slices.
type gen struct {
	r   *rand.Rand
	seq map[string][]uint64 // sequence numbers seen, to acknowledge real ones
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) time() time.Time {
	if g.r.IntN(3) == 0 {
		return time.Time{}
	}
	return time.Unix(1_700_000_000+g.r.Int64N(1_000_000), g.r.Int64N(1e9))
}

func (g *gen) bytes(max int) []byte {
	n := g.r.IntN(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

func (g *gen) message() *store.MessageRecord {
	return &store.MessageRecord{
		Topic: g.pick(topics), Payload: g.bytes(64), QoS: byte(g.r.IntN(3)), Retain: g.r.IntN(2) == 0,
		From: g.pick(append(clients, "")), Created: g.time(), Props: g.bytes(8),
	}
}

func (g *gen) session(id string) *store.SessionRecord {
	s := &store.SessionRecord{
		ClientID: id, Username: g.pick([]string{"", "alice"}), Version: byte(4 + g.r.IntN(2)),
		Expiry: g.r.Uint32(), OfflineSince: g.time(), WillDelay: uint32(g.r.IntN(100)),
	}
	if g.r.IntN(2) == 0 {
		s.Will = g.message()
	}
	for range g.r.IntN(4) {
		s.Subs = append(s.Subs, store.SubscriptionRecord{
			Filter: g.pick([]string{"a/#", "+/b", "$share/g/a/+", "t é"}), QoS: byte(g.r.IntN(3)),
			NoLocal: g.r.IntN(2) == 0, RetainAsPublished: g.r.IntN(2) == 0, SubscriptionID: uint32(g.r.IntN(3)),
		})
	}
	return s
}

func (g *gen) deliveries() []store.Delivery {
	n := 1 + g.r.IntN(3)
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = store.Delivery{ClientID: g.pick(clients), QoS: byte(g.r.IntN(3)), Retain: g.r.IntN(2) == 0, Group: g.pick([]string{"", "$share/g/a/+"})}
		for range g.r.IntN(3) {
			ds[i].SubIDs = append(ds[i].SubIDs, 1+g.r.Uint32N(1000))
		}
	}
	return ds
}

// op returns one random operation as a function adding it to a batch, and
// a description for failure messages.
func (g *gen) op() (func(b *store.Batch) []store.Delivery, string) {
	id := g.pick(clients)
	pid := uint16(1 + g.r.IntN(5))
	switch k := g.r.IntN(20); {
	case k < 2:
		s := g.session(id)
		return func(b *store.Batch) []store.Delivery { b.PutSession(store.CloneSession(s)); return nil }, "PutSession " + id
	case k < 3:
		return func(b *store.Batch) []store.Delivery { b.DeleteSession(id); return nil }, "DeleteSession " + id
	case k < 5:
		m := g.message()
		return func(b *store.Batch) []store.Delivery { b.PutRetained(store.CloneMessage(m)); return nil }, "PutRetained " + m.Topic
	case k < 6:
		t := g.pick(topics)
		return func(b *store.Batch) []store.Delivery { b.DeleteRetained(t); return nil }, "DeleteRetained " + t
	case k < 11:
		m, ds := g.message(), g.deliveries()
		return func(b *store.Batch) []store.Delivery {
			c := cloneDeliveries(ds)
			b.Enqueue(store.CloneMessage(m), c)
			return c
		}, fmt.Sprintf("Enqueue to %d", len(ds))
	case k < 15:
		seq := g.ackSeq(id)
		return func(b *store.Batch) []store.Delivery { b.Ack(id, seq); return nil }, fmt.Sprintf("Ack %s %d", id, seq)
	case k < 16:
		r := store.InflightRecord{PacketID: pid, Seq: g.r.Uint64N(20), State: store.InflightState(1 + g.r.IntN(2))}
		return func(b *store.Batch) []store.Delivery { b.SetInflight(id, r); return nil }, fmt.Sprintf("SetInflight %s %+v", id, r)
	case k < 17:
		return func(b *store.Batch) []store.Delivery { b.ClearInflight(id, pid); return nil }, fmt.Sprintf("ClearInflight %s %d", id, pid)
	case k < 18:
		return func(b *store.Batch) []store.Delivery { b.AddQoS2In(id, pid); return nil }, fmt.Sprintf("AddQoS2In %s %d", id, pid)
	default:
		return func(b *store.Batch) []store.Delivery { b.RemoveQoS2In(id, pid); return nil }, fmt.Sprintf("RemoveQoS2In %s %d", id, pid)
	}
}

// ackSeq is mostly a sequence number handed out to id (maybe already
// acknowledged), sometimes one never handed out.
func (g *gen) ackSeq(id string) uint64 {
	seen := g.seq[id]
	if len(seen) == 0 || g.r.IntN(5) == 0 {
		return g.r.Uint64N(30)
	}
	return seen[g.r.IntN(len(seen))]
}

func cloneDeliveries(ds []store.Delivery) []store.Delivery {
	out := make([]store.Delivery, len(ds))
	for i, d := range ds {
		d.SubIDs = append([]uint32(nil), d.SubIDs...)
		if len(d.SubIDs) == 0 {
			d.SubIDs = nil
		}
		out[i] = d
	}
	return out
}
