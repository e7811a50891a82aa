package pebblestore

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
)

// The package's own records: the queue entry (version 2), an in-flight
// packet id and a queue's last sequence number (version 1).

const (
	refV2      = 2
	inflightV1 = 1
	lastV1     = 1
)

// ref is a queue entry: which message, and how to deliver it. A message
// queued for one session only is held by its entry (msg 0, body set), so
// that storing and dropping it is one key each, not two; a message for
// several sessions is stored once under its id and the entries refer to it.
type ref struct {
	msg    uint64 // 0: the body is in the entry
	qos    byte
	retain bool
	subIDs []uint32
	group  string
	body   *store.MessageRecord // the message, when msg is 0
}

// appendRef encodes r: version, message id, delivery options and, when
// the id is 0, the message's own encoding (store.AppendMessage) to the end.
func appendRef(dst []byte, r *ref) []byte {
	e := store.Encoder{B: dst}
	e.Byte(refV2)
	e.Uvarint(r.msg)
	e.Byte(r.qos)
	e.Bool(r.retain)
	e.Uvarint(uint64(len(r.subIDs)))
	for _, id := range r.subIDs {
		e.Uvarint(uint64(id))
	}
	e.String(r.group)
	if r.msg == 0 {
		return store.AppendMessage(e.B, r.body)
	}
	return e.B
}

func decodeRef(b []byte) (ref, error) {
	d := store.Decoder{B: b, What: "queue entry"}
	d.Version(refV2)
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
	if r.msg == 0 && d.Err() == nil {
		m, err := store.DecodeMessage(d.B)
		if err != nil {
			return ref{}, err
		}
		r.body, d.B = m, nil
	}
	return r, d.Finish()
}

// refMsg is the message id of an encoded queue entry (0: the message is
// in the entry), read without decoding the rest (Open reads every entry).
func refMsg(b []byte) (uint64, error) {
	d := store.Decoder{B: b, What: "queue entry"}
	d.Version(refV2)
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
