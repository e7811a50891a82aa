package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Encoder and Decoder are the primitives of the record encodings: unsigned
// varints, length-prefixed bytes, times as Unix nanoseconds (0 = zero time).
// Implementations use them for their own records too.
type Encoder struct {
	B []byte // the encoding so far; start it with a reused buffer to avoid allocating
}

// Byte appends v as it is: version bytes, QoS and flags.
func (e *Encoder) Byte(v byte) { e.B = append(e.B, v) }

// Uvarint appends v as an unsigned varint, so small counts, lengths and
// ids cost one byte.
func (e *Encoder) Uvarint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Bytes appends p prefixed by its length; Decoder.Bytes reads it back.
// Nil and empty encode the same.
func (e *Encoder) Bytes(p []byte) { e.Uvarint(uint64(len(p))); e.B = append(e.B, p...) }

// String appends s prefixed by its length, the same layout as Bytes.
func (e *Encoder) String(s string) { e.Uvarint(uint64(len(s))); e.B = append(e.B, s...) }

// Bool appends v as one byte, 1 or 0; Decoder.Bool rejects anything else.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Byte(1)
	} else {
		e.Byte(0)
	}
}

// Time appends t as Unix nanoseconds, with 0 standing for the zero time
// (no expiry, never seen). The location and monotonic reading are not
// kept: see NormalTime.
func (e *Encoder) Time(t time.Time) {
	if t.IsZero() {
		e.Uvarint(0)
		return
	}
	e.Uvarint(uint64(t.UnixNano()))
}

// Decoder reads what Encoder wrote. The first failure sticks: check Err
// (or Finish) once at the end.
type Decoder struct {
	B    []byte // what is left to read
	What string // record name, for errors
	err  error
}

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, d.What, fmt.Sprintf(format, args...))
	}
}

// Err is the first decoding failure.
func (d *Decoder) Err() error { return d.err }

// Finish fails on trailing bytes and returns the first failure.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.B) != 0 {
		d.fail("%d trailing bytes", len(d.B))
	}
	return d.err
}

// Byte reads one byte, failing on an empty record.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.B) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// Uvarint reads an unsigned varint, failing on a truncated or overlong one.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Uint32 reads a varint that must fit 32 bits.
func (d *Decoder) Uint32() uint32 {
	v := d.Uvarint()
	if v > 0xFFFFFFFF {
		d.fail("value %d out of range", v)
		return 0
	}
	return uint32(v)
}

// Bytes returns a copy (nil when empty), so a record never aliases the
// buffer it was decoded from.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.fail("length %d beyond the record", n)
		return nil
	}
	var p []byte
	if n > 0 {
		p = append([]byte(nil), d.B[:n]...)
	}
	d.B = d.B[n:]
	return p
}

// String reads what Encoder.String wrote, failing when the length runs
// past the end of the record. The result never aliases the buffer.
func (d *Decoder) String() string {
	n := d.Uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.B)) {
		d.fail("length %d beyond the record", n)
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}

// Bool reads a byte that must be 0 or 1, so a corrupt record is caught
// rather than read as true.
func (d *Decoder) Bool() bool {
	switch v := d.Byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bad boolean %d", v)
		return false
	}
}

// QoS reads a QoS byte, 0 to 2.
func (d *Decoder) QoS() byte {
	v := d.Byte()
	if v > 2 {
		d.fail("bad QoS %d", v)
		return 0
	}
	return v
}

// Time reads what Encoder.Time wrote: 0 is the zero time, anything above
// the largest int64 is corruption.
func (d *Decoder) Time() time.Time {
	v := d.Uvarint()
	if v == 0 || d.err != nil {
		return time.Time{}
	}
	if v > 1<<63-1 {
		d.fail("time out of range")
		return time.Time{}
	}
	return time.Unix(0, int64(v))
}

// Version reads the leading version byte and fails unless it is want.
func (d *Decoder) Version(want byte) {
	if v := d.Byte(); d.err == nil && v != want {
		d.fail("unknown record version %d", v)
	}
}

// Count reads an element count and fails if the record cannot hold that
// many elements of at least minSize bytes each, so garbage cannot make a
// decoder allocate a huge slice.
func (d *Decoder) Count(minSize int) int {
	n := d.Uvarint()
	if d.err == nil && n > uint64(len(d.B)/max(minSize, 1)) {
		d.fail("count %d beyond the record", n)
		return 0
	}
	return int(n)
}

// NormalTime is t as the encodings keep it: nanoseconds since the epoch,
// no monotonic reading or location.
func NormalTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano())
}
