package pebblestore

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
)

// The package's own records, version 1: the queue entry, an in-flight
// packet id and a queue's last sequence number.

const (
	refV1      = 1
	inflightV1 = 1
	lastV1     = 1
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

// refMsg is the message id of an encoded queue entry, read without
// decoding the rest (Open reads every entry).
func refMsg(b []byte) (uint64, error) {
	d := store.Decoder{B: b, What: "queue entry"}
	d.Version(refV1)
	msg := d.Uvarint()
	return msg, d.Err()
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

// A queue's last sequence number handed out, written for every queue at
// Close (see index.go).

func appendLast(dst []byte, last uint64) []byte {
	e := store.Encoder{B: dst}
	e.Byte(lastV1)
	e.Uvarint(last)
	return e.B
}

func decodeLast(b []byte) (uint64, error) {
	d := store.Decoder{B: b, What: "queue last sequence"}
	d.Version(lastV1)
	n := d.Uvarint()
	return n, d.Finish()
}
