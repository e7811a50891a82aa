package pebblestore

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

func mustCorrupt(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("error does not wrap ErrCorrupt: %v", err)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	r := ref{msg: 1 << 40, qos: 2, retain: true, subIDs: []uint32{1, 268435455}, group: "$share/g/t"}
	if got, err := decodeRef(appendRef(nil, &r)); err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("ref: %+v %v", got, err)
	}
	h := head{last: 9, count: 3}
	if got, err := decodeHead(appendHead(nil, h)); err != nil || got != h {
		t.Fatalf("head: %+v %v", got, err)
	}
	in := store.InflightRecord{PacketID: 7, Seq: 12, State: store.AwaitComp}
	if got, err := decodeInflight(7, appendInflight(nil, in)); err != nil || got != in {
		t.Fatalf("inflight: %+v %v", got, err)
	}
	if got, err := decodeCount(appendCount(nil, 5)); err != nil || got != 5 {
		t.Fatalf("count: %d %v", got, err)
	}
}

func TestRecordsRejectInvalid(t *testing.T) {
	bad := map[string]error{}
	_, bad["head count > last"] = decodeHead(appendHead(nil, head{last: 1, count: 2}))
	_, bad["inflight state 3"] = decodeInflight(1, appendInflight(nil, store.InflightRecord{Seq: 1, State: 3}))
	_, bad["zero count"] = decodeCount([]byte{countV1, 0})
	_, bad["ref qos 3"] = decodeRef(appendRef(nil, &ref{qos: 3}))
	_, bad["ref version 2"] = decodeRef([]byte{2, 0, 0, 0, 0, 0})
	_, bad["ref trailing"] = decodeRef(append(appendRef(nil, &ref{}), 0))
	_, bad["empty"] = decodeHead(nil)
	for name, err := range bad {
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeRef(f *testing.F) {
	f.Add(appendRef(nil, &ref{msg: 3, qos: 1, subIDs: []uint32{4}, group: "g"}))
	f.Add([]byte{refV1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRef(b)
		mustCorrupt(t, err)
		if err == nil {
			if r2, err := decodeRef(appendRef(nil, &r)); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("re-decode: %+v %+v %v", r, r2, err)
			}
		}
	})
}

func FuzzDecodeHead(f *testing.F) {
	f.Add(appendHead(nil, head{last: 5, count: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeHead(b)
		mustCorrupt(t, err)
	})
}

func FuzzDecodeInflight(f *testing.F) {
	f.Add(appendInflight(nil, store.InflightRecord{Seq: 5, State: store.AwaitAck}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeInflight(1, b)
		mustCorrupt(t, err)
	})
}

func FuzzDecodeCount(f *testing.F) {
	f.Add(appendCount(nil, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeCount(b)
		mustCorrupt(t, err)
	})
}
