package pebblestore

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// enqueueN queues n messages, each for the sessions named, one commit
// each, and returns the sequence numbers per session.
func enqueueN(t *testing.T, s *Store, n int, clients ...string) map[string][]uint64 {
	t.Helper()
	seqs := map[string][]uint64{}
	for i := range n {
		ds := make([]store.Delivery, len(clients))
		for j, c := range clients {
			ds[j] = store.Delivery{ClientID: c, QoS: 1}
		}
		var b store.Batch
		b.Enqueue(&store.MessageRecord{Topic: "t", Payload: fmt.Appendf(nil, "m%d", i), QoS: 1}, ds)
		mustCommit(t, s, &b)
		for _, d := range ds {
			seqs[d.ClientID] = append(seqs[d.ClientID], d.Seq)
		}
	}
	return seqs
}

func queued(t *testing.T, s *Store, client string) []string {
	t.Helper()
	qs, err := s.Scan(client, 0, 1000)
	must(t, err)
	var out []string
	for _, q := range qs {
		out = append(out, fmt.Sprintf("%d:%s", q.Seq, q.Msg.Payload))
	}
	return out
}

// Acknowledgements gathered in one commit are deleted in ranges, and a
// range never takes an entry still queued between the acknowledged ones,
// whether its message is held by the entry (one session) or shared.
func TestAckRangesKeepEntriesBetween(t *testing.T) {
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = 0
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Durability: store.None})
	enqueueN(t, s, 6, "solo")
	enqueueN(t, s, 6, "a", "b")
	var b store.Batch
	for _, seq := range []uint64{6, 1, 2, 4, 5} { // out of order: 3 stays
		b.Ack("solo", seq)
	}
	for _, seq := range []uint64{1, 2, 3, 4, 5, 6} {
		b.Ack("a", seq)
	}
	for _, seq := range []uint64{1, 2, 4, 6} { // 3 and 5 stay
		b.Ack("b", seq)
	}
	mustCommit(t, s, &b)
	check := func() {
		t.Helper()
		if got, want := queued(t, s, "solo"), []string{"3:m2"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("solo: %v, want %v", got, want)
		}
		if got := queued(t, s, "a"); len(got) != 0 {
			t.Fatalf("a: %v, want nothing", got)
		}
		if got, want := queued(t, s, "b"), []string{"3:m2", "5:m4"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("b: %v, want %v", got, want)
		}
		if n, err := s.MessageCount(); err != nil || n != 3 {
			t.Fatalf("messages: %d %v, want 3", n, err)
		}
		if _, err := s.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	check()
	must(t, s.Close())
	s = mustOpen(t, dir, Options{Durability: store.None})
	defer s.Close()
	check()
}

// What a delivery costs in keys: a message for one session is one key to
// store and, acknowledged in order, one range deletion per commit of
// acknowledgements, not a key per message and entry.
func TestKeysPerDelivery(t *testing.T) {
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = 0
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None})
	defer s.Close()
	k0 := s.KeysWritten()
	seqs := enqueueN(t, s, 50, "solo")
	if n := s.KeysWritten() - k0; n != 50 {
		t.Fatalf("50 messages for one session wrote %d keys, want 50", n)
	}
	k0 = s.KeysWritten()
	var b store.Batch
	for _, seq := range seqs["solo"] {
		b.Ack("solo", seq)
	}
	mustCommit(t, s, &b)
	if n := s.KeysWritten() - k0; n != 1 {
		t.Fatalf("acknowledging 50 entries in order wrote %d keys, want 1", n)
	}
	// Shared by two sessions: the message, two entries; then one range for
	// each queue and one for the messages.
	k0 = s.KeysWritten()
	seqs = enqueueN(t, s, 20, "a", "b")
	if n := s.KeysWritten() - k0; n != 60 {
		t.Fatalf("20 messages for two sessions wrote %d keys, want 60", n)
	}
	k0 = s.KeysWritten()
	b.Reset()
	for _, c := range []string{"a", "b"} {
		for _, seq := range seqs[c] {
			b.Ack(c, seq)
		}
	}
	mustCommit(t, s, &b)
	if n := s.KeysWritten() - k0; n != 3 {
		t.Fatalf("acknowledging 20 messages of two sessions wrote %d keys, want 3", n)
	}
	if n, _ := s.MessageCount(); n != 0 {
		t.Fatalf("messages left: %d", n)
	}
}

// While the store is being read, acknowledgements are deleted point by
// point (see noteRead); once reads stop for readQuiet, in ranges again.
func TestReadsMakePointDeletes(t *testing.T) {
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = time.Hour
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None})
	defer s.Close()
	ackAll := func(seqs []uint64) uint64 {
		t.Helper()
		k0 := s.KeysWritten()
		var b store.Batch
		for _, seq := range seqs {
			b.Ack("c", seq)
		}
		mustCommit(t, s, &b)
		return s.KeysWritten() - k0
	}
	if n := ackAll(enqueueN(t, s, 10, "c")["c"]); n != 1 {
		t.Fatalf("no read: %d keys, want 1 range deletion", n)
	}
	seqs := enqueueN(t, s, 10, "c")["c"]
	queued(t, s, "c")
	if n := ackAll(seqs); n != 10 {
		t.Fatalf("after a read: %d keys, want 10 point deletions", n)
	}
	readQuiet = 0
	if n := ackAll(enqueueN(t, s, 10, "c")["c"]); n != 1 {
		t.Fatalf("reads quiet: %d keys, want 1 range deletion", n)
	}
}

// A session deleted in the batch that acknowledged some of its entries
// and then queued again: the new entries (sequence numbers from 1 again)
// are not taken by the acknowledgements' range.
func TestAckThenDeleteSessionThenEnqueue(t *testing.T) {
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = 0
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None})
	defer s.Close()
	enqueueN(t, s, 4, "c")
	var b store.Batch
	b.Ack("c", 1)
	b.Ack("c", 2)
	b.DeleteSession("c")
	ds := []store.Delivery{{ClientID: "c"}}
	b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte("new1")}, ds)
	ds2 := []store.Delivery{{ClientID: "c"}}
	b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte("new2")}, ds2)
	mustCommit(t, s, &b)
	if got, want := queued(t, s, "c"), []string{"1:new1", "2:new2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue: %v, want %v", got, want)
	}
	if _, err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// A store in an older format is refused with a message that says so, and
// is never quarantined as corrupt.
func TestOlderFormatRefused(t *testing.T) {
	for _, v := range []byte{1, 2} {
		dir := filledStore(t)
		damage(t, dir, func(db *pebble.DB) { must(t, db.Set(formatKey, []byte{v}, pebble.Sync)) })
		_, err := Open(dir, Options{Logger: quiet(), OnCorrupt: Quarantine})
		if !errors.Is(err, ErrOldFormat) || errors.Is(err, ErrCorruptStore) {
			t.Fatalf("format %d: open: %v, want ErrOldFormat", v, err)
		}
		for _, want := range []string{dir, fmt.Sprintf("format %d", v), "older mqttd"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("format %d: message does not say %q: %v", v, want, err)
			}
		}
		if !hasManifest(dir) {
			t.Fatal("store moved away")
		}
	}
}
