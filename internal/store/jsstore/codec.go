package jsstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
)

// Record encodings private to this store, version 1, in the store's wire
// primitives. Every live record is at least one byte long, so an empty
// message on a subject is a tombstone.

const (
	headV1     = 1
	entryV1    = 1
	inflightV1 = 1
	qos2V1     = 1
	countV1    = 1
)

// head is a session's queue state: its generation (bumped by
// DeleteSession, so that the old queue, in-flight and QoS 2 subjects stop
// counting at once), the last sequence number handed out, and the number
// of live entries.
type head struct {
	gen, next, live uint64
}

func appendHead(dst []byte, h head) []byte {
	e := store.Encoder{B: dst}
	e.Byte(headV1)
	e.Uvarint(h.gen)
	e.Uvarint(h.next)
	e.Uvarint(h.live)
	return e.B
}

func decodeHead(b []byte) (head, error) {
	d := store.Decoder{B: b, What: "queue head"}
	d.Version(headV1)
	h := head{gen: d.Uvarint(), next: d.Uvarint(), live: d.Uvarint()}
	return h, d.Finish()
}

// entry is one queue entry: the delivery (its client id and seq are in the
// subject) and the id of the message body it references.
type entry struct {
	body string
	d    store.Delivery
}

func appendEntry(dst []byte, body string, d *store.Delivery) []byte {
	e := store.Encoder{B: dst}
	e.Byte(entryV1)
	e.String(body)
	e.Byte(d.QoS)
	e.Bool(d.Retain)
	e.Uvarint(uint64(len(d.SubIDs)))
	for _, id := range d.SubIDs {
		e.Uvarint(uint64(id))
	}
	e.String(d.Group)
	return e.B
}

func decodeEntry(b []byte) (entry, error) {
	d := store.Decoder{B: b, What: "queue entry"}
	d.Version(entryV1)
	var x entry
	x.body = d.String()
	x.d.QoS = d.QoS()
	x.d.Retain = d.Bool()
	if n := d.Count(1); n > 0 {
		x.d.SubIDs = make([]uint32, n)
		for i := range x.d.SubIDs {
			x.d.SubIDs[i] = d.Uint32()
		}
	}
	x.d.Group = d.String()
	return x, d.Finish()
}

func appendInflight(dst []byte, r store.InflightRecord) []byte {
	e := store.Encoder{B: dst}
	e.Byte(inflightV1)
	e.Uvarint(uint64(r.PacketID))
	e.Uvarint(r.Seq)
	e.Byte(byte(r.State))
	return e.B
}

func decodeInflight(b []byte) (store.InflightRecord, error) {
	d := store.Decoder{B: b, What: "in-flight record"}
	d.Version(inflightV1)
	pid := d.Uvarint()
	r := store.InflightRecord{Seq: d.Uvarint(), State: store.InflightState(d.Byte())}
	if err := d.Finish(); err != nil {
		return r, err
	}
	if pid == 0 || pid > 0xFFFF {
		return r, fmt.Errorf("%w: in-flight packet id %d", store.ErrCorrupt, pid)
	}
	r.PacketID = uint16(pid)
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
	return n, d.Finish()
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
