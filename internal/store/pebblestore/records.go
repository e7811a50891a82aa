package pebblestore

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
)

// The package's own records, version 1: the queue entry, the queue head,
// an in-flight packet id and a reference count.

const (
	refV1      = 1
	headV1     = 1
	inflightV1 = 1
	countV1    = 1
)

// ref is a queue entry: which message, and how to deliver it.
type ref struct {
	msg    uint64
	qos    byte
	retain bool
	subIDs []uint32
	group  string
}

func appendRef(dst []byte, r *ref) []byte {
	e := store.Encoder{B: dst}
	e.Byte(refV1)
	e.Uvarint(r.msg)
	e.Byte(r.qos)
	e.Bool(r.retain)
	e.Uvarint(uint64(len(r.subIDs)))
	for _, id := range r.subIDs {
		e.Uvarint(uint64(id))
	}
	e.String(r.group)
	return e.B
}

func decodeRef(b []byte) (ref, error) {
	d := store.Decoder{B: b, What: "queue entry"}
	d.Version(refV1)
	var r ref
	r.msg = d.Uvarint()
	r.qos = d.QoS()
	r.retain = d.Bool()
	if n := d.Count(1); n > 0 {
		r.subIDs = make([]uint32, n)
		for i := range r.subIDs {
			r.subIDs[i] = d.Uint32()
		}
	}
	r.group = d.String()
	return r, d.Finish()
}

// head is a queue's last sequence number handed out and its entry count.
type head struct {
	last  uint64
	count uint64
}

func appendHead(dst []byte, h head) []byte {
	e := store.Encoder{B: dst}
	e.Byte(headV1)
	e.Uvarint(h.last)
	e.Uvarint(h.count)
	return e.B
}

func decodeHead(b []byte) (head, error) {
	d := store.Decoder{B: b, What: "queue head"}
	d.Version(headV1)
	h := head{last: d.Uvarint(), count: d.Uvarint()}
	if err := d.Finish(); err != nil {
		return head{}, err
	}
	if h.count > h.last {
		return head{}, fmt.Errorf("%w: queue head: %d entries but last sequence %d", store.ErrCorrupt, h.count, h.last)
	}
	return h, nil
}

func appendInflight(dst []byte, r store.InflightRecord) []byte {
	e := store.Encoder{B: dst}
	e.Byte(inflightV1)
	e.Uvarint(r.Seq)
	e.Byte(byte(r.State))
	return e.B
}

func decodeInflight(pid uint16, b []byte) (store.InflightRecord, error) {
	d := store.Decoder{B: b, What: "in-flight"}
	d.Version(inflightV1)
	r := store.InflightRecord{PacketID: pid, Seq: d.Uvarint(), State: store.InflightState(d.Byte())}
	if err := d.Finish(); err != nil {
		return store.InflightRecord{}, err
	}
	if r.State != store.AwaitAck && r.State != store.AwaitComp {
		return store.InflightRecord{}, fmt.Errorf("%w: in-flight: bad state %d", store.ErrCorrupt, r.State)
	}
	return r, nil
}

func appendCount(dst []byte, n uint64) []byte {
	e := store.Encoder{B: dst}
	e.Byte(countV1)
	e.Uvarint(n)
	return e.B
}

func decodeCount(b []byte) (uint64, error) {
	d := store.Decoder{B: b, What: "reference count"}
	d.Version(countV1)
	n := d.Uvarint()
	if err := d.Finish(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: reference count: zero is never stored", store.ErrCorrupt)
	}
	return n, nil
}
