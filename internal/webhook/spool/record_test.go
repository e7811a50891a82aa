package spool

import (
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	v := appendRecord(nil, "id-1", []byte(`{"id":"id-1"}`))
	id, js, err := decodeRecord(v)
	if err != nil || string(id) != "id-1" || string(js) != `{"id":"id-1"}` {
		t.Fatalf("got %q %q %v", id, js, err)
	}
	for i := range v { // every single flipped bit is caught
		for bit := range 8 {
			w := append([]byte(nil), v...)
			w[i] ^= 1 << bit
			if _, _, err := decodeRecord(w); !errors.Is(err, ErrBadRecord) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
}

// FuzzDecodeRecord: the decoder never panics, and what it accepts encodes
// back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, "a", []byte(`{}`)))
	f.Add(appendRecord(nil, "", []byte(`{"x":1}`)))
	f.Add([]byte{recordV1, 0, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, js, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error not wrapping ErrBadRecord: %v", err)
			}
			return
		}
		if again := appendRecord(nil, string(id), js); string(again) != string(b) {
			// A non-minimal uvarint length decodes too; then only the
			// decoded fields must survive a round trip.
			id2, js2, err := decodeRecord(again)
			if err != nil || string(id2) != string(id) || string(js2) != string(js) {
				t.Fatalf("round trip changed %x to %x", b, again)
			}
		}
	})
}
