package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleMessage() *MessageRecord {
	return &MessageRecord{
		Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true, From: "pub",
		Created: time.Unix(1700000000, 123), Props: []byte{0x02, 0, 0, 0, 60},
	}
}

func sampleSession() *SessionRecord {
	return &SessionRecord{
		ClientID: "c1", Username: "u", Version: 5, Expiry: 3600,
		OfflineSince: time.Unix(1700000100, 5), Will: sampleMessage(), WillDelay: 30,
		Subs: []SubscriptionRecord{
			{Filter: "a/#", QoS: 1, NoLocal: true, SubscriptionID: 7},
			{Filter: "$share/g/x/+", QoS: 2, RetainAsPublished: true},
		},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []*MessageRecord{sampleMessage(), {Topic: "t"}} {
		got, err := DecodeMessage(AppendMessage(nil, m))
		if err != nil {
			t.Fatal(err)
		}
		if want := CloneMessage(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

func TestSessionRoundTrip(t *testing.T) {
	for _, s := range []*SessionRecord{sampleSession(), {ClientID: "bare"}} {
		got, err := DecodeSession(AppendSession(nil, s))
		if err != nil {
			t.Fatal(err)
		}
		if want := CloneSession(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

// Every strict prefix of a valid record, and the record with a byte
// appended, must be refused with ErrCorrupt.
func TestDecodersRejectTruncatedAndTrailing(t *testing.T) {
	recs := map[string][]byte{
		"message": AppendMessage(nil, sampleMessage()),
		"session": AppendSession(nil, sampleSession()),
	}
	for name, b := range recs {
		bad := [][]byte{append(append([]byte(nil), b...), 0)}
		for i := 0; i < len(b); i++ {
			bad = append(bad, b[:i])
		}
		for _, x := range bad {
			var err error
			if name == "message" {
				_, err = DecodeMessage(x)
			} else {
				_, err = DecodeSession(x)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s %x: err = %v, want ErrCorrupt", name, x, err)
			}
		}
	}
}

func TestDecodeRejectsUnknownVersionAndBadQoS(t *testing.T) {
	b := AppendMessage(nil, sampleMessage())
	b[0] = 9
	if _, err := DecodeMessage(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 9: %v", err)
	}
	m := sampleMessage()
	m.QoS = 3
	if _, err := DecodeMessage(AppendMessage(nil, m)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("QoS 3: %v", err)
	}
}

// A huge element count in a short record must fail, not allocate.
func TestDecodeSessionHugeCount(t *testing.T) {
	s := &SessionRecord{ClientID: "c"}
	b := AppendSession(nil, s)
	b = b[:len(b)-1] // drop the zero subscription count
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := DecodeSession(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(AppendMessage(nil, sampleMessage()))
	f.Add(AppendMessage(nil, &MessageRecord{}))
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes must re-encode to a record that decodes the same.
		m2, err := DecodeMessage(AppendMessage(nil, m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v %+v %+v", err, m, m2)
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	f.Add(AppendSession(nil, sampleSession()))
	f.Add(AppendSession(nil, &SessionRecord{ClientID: "x"}))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 'c', 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSession(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		s2, err := DecodeSession(AppendSession(nil, s))
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-decode: %v %+v %+v", err, s, s2)
		}
	})
}

func TestParseDurability(t *testing.T) {
	for s, want := range map[string]Durability{"sync": Sync, "interval": Interval, "none": None} {
		if got, err := ParseDurability(s); err != nil || got != want || got.String() != s {
			t.Fatalf("%q: %v %v", s, got, err)
		}
	}
	if _, err := ParseDurability("fast"); err == nil {
		t.Fatal("fast accepted")
	}
}
