package spool

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
)

func open(t testing.TB, dir string, maxBytes int64) *Spool {
	t.Helper()
	s, err := Open(dir, Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(n int) Entry {
	id := fmt.Sprintf("ev-%d", n)
	return Entry{ID: id, JSON: []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("x", n%37) + `"}`)}
}

func recordSize(e Entry) int64 { return int64(keyLen + len(appendRecord(nil, e.ID, e.JSON))) }

// TestModel drives the spool with random appends, peeks, releases and
// reopens, and holds it to a slice that does the same: what is read is
// exactly what was appended and not yet released or dropped, in order,
// and the byte count is the sum of what is held.
func TestModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			const maxBytes = 4000
			s := open(t, dir, maxBytes)
			var model []Record // what the spool must hold
			var next uint64 = 1
			var dropped uint64
			n := 0
			for step := 0; step < 400; step++ {
				switch op := rng.IntN(10); {
				case op < 5: // append a few
					var es []Entry
					for range 1 + rng.IntN(5) {
						es = append(es, event(n))
						n++
					}
					last, d, err := s.Append(es)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range es {
						model = append(model, Record{Seq: next, ID: e.ID, JSON: e.JSON})
						next++
					}
					if last != next-1 {
						t.Fatalf("last = %d, want %d", last, next-1)
					}
					var bytes int64
					for _, r := range model {
						bytes += recordSize(Entry{r.ID, r.JSON})
					}
					want := 0
					for bytes > maxBytes {
						bytes -= recordSize(Entry{model[want].ID, model[want].JSON})
						want++
					}
					if d != want {
						t.Fatalf("dropped %d, want %d", d, want)
					}
					model = model[want:]
					dropped += uint64(want)
				case op < 8: // release some of what a peek saw
					got, err := s.Peek(1+rng.IntN(8), 1<<20)
					if err != nil {
						t.Fatal(err)
					}
					check(t, got, model[:len(got)])
					if len(got) > 0 {
						k := rng.IntN(len(got))
						if err := s.Release(got[k].Seq); err != nil {
							t.Fatal(err)
						}
						model = model[k+1:]
					}
				case op < 9: // reopen, synced or not: Close syncs
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = open(t, dir, maxBytes)
				default:
					if err := s.Sync(); err != nil {
						t.Fatal(err)
					}
				}
				st := s.Stats()
				var bytes int64
				for _, r := range model {
					bytes += recordSize(Entry{r.ID, r.JSON})
				}
				if st.Records != len(model) || st.Bytes != bytes {
					t.Fatalf("step %d: stats %+v, model holds %d records of %d bytes", step, st, len(model), bytes)
				}
			}
			all, err := s.Peek(1<<30, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			check(t, all, model)
			if dropped == 0 {
				t.Fatal("the byte bound was never reached: the test does not exercise it")
			}
			s.Close()
		})
	}
}

func check(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].ID != want[i].ID || string(got[i].JSON) != string(want[i].JSON) {
			t.Fatalf("record %d: got %d %s %s, want %d %s %s", i, got[i].Seq, got[i].ID, got[i].JSON, want[i].Seq, want[i].ID, want[i].JSON)
		}
	}
}

func TestPeekBoundsBytes(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	defer s.Close()
	s.Append([]Entry{event(30), event(30), event(30)})
	one := len(event(30).JSON)
	got, _ := s.Peek(10, one*2+1) // two and the comma between them
	if len(got) != 2 {
		t.Fatalf("peeked %d, want 2 within %d bytes", len(got), one*2)
	}
	if got, _ = s.Peek(10, one*2); len(got) != 1 {
		t.Fatalf("peeked %d, want 1 when the comma does not fit", len(got))
	}
	got, _ = s.Peek(10, 1) // the first always comes, however large
	if len(got) != 1 {
		t.Fatalf("peeked %d, want 1", len(got))
	}
}

// TestSharedHandles: a second Open of a directory in one process shares the
// store (a plugin rebuilt by a reload), and is not Clear until the older
// handle has closed and what was spooled before then is released.
func TestSharedHandles(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 0)
	a.Append([]Entry{event(1)})
	b := open(t, dir, 0)
	if b.Clear() {
		t.Fatal("new handle clear while the spool holds older records")
	}
	a.Append([]Entry{event(2)})
	got, _ := b.Peek(10, 1<<20)
	if len(got) != 2 {
		t.Fatalf("second handle sees %d records, want 2", len(got))
	}
	b.Release(got[0].Seq)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Clear() {
		t.Fatal("clear before the old handle's last record is released")
	}
	b.Release(got[1].Seq)
	if !b.Clear() {
		t.Fatal("not clear with nothing older left")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != ErrClosed {
		t.Fatalf("second close: %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	f, err := lockDir(dir) // as another mqttd would hold it
	if err != nil {
		t.Fatal(err)
	}
	defer unlockDir(f)
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another mqttd") {
		t.Fatalf("Open of a locked dir: %v", err)
	}
}

// TestCorruptRecordDeleted: a record whose bytes changed on disk is
// deleted and counted at Open; the others are read.
func TestCorruptRecordDeleted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	s.Append([]Entry{event(1), event(2), event(3)})
	s.Close()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(eventKey(2), []byte{recordV1, 1, 2, 3, 4, 5}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = open(t, dir, 0)
	defer s.Close()
	if st := s.Stats(); st.Corrupt != 1 || st.Records != 3 {
		t.Fatalf("stats %+v, want 1 corrupt of 3 indexed", st)
	}
	got, err := s.Peek(10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "ev-1" || got[1].ID != "ev-3" {
		t.Fatalf("got %+v", got)
	}
}

// TestCorruptStoreQuarantined: a directory Pebble cannot read is moved
// aside and an empty spool started.
func TestCorruptStoreQuarantined(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, 0)
	s.Append([]Entry{event(1)})
	s.Close()
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(m) == 0 {
		t.Fatal("no manifest")
	}
	if err := os.WriteFile(m[0], []byte("garbage, not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 0)
	defer s.Close()
	if st := s.Stats(); st.Records != 0 {
		t.Fatalf("quarantined spool holds %d", st.Records)
	}
	aside, _ := filepath.Glob(dir + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %v", aside)
	}
}
