package pebblestore

import (
	"syscall"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

// TestKill9KeepsAcknowledged: a child process commits with sync durability
// from 8 goroutines, printing every commit that returned; it is SIGKILLed
// mid-stream, twice in a row on the same directory. After each kill every
// acknowledged delivery is in the store with its payload, and sequence
// numbers carry on from where they stopped.
func TestKill9KeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	acked := map[uint64]string{}
	const perRound = 300
	for round := range 2 {
		c := startChild(t, "append", dir)
		for range perRound {
			seq, p := parseAck(t, c.line(t))
			acked[seq] = p
		}
		must(t, c.cmd.Process.Signal(syscall.SIGKILL))
		for c.out.Scan() { // acknowledgements already in the pipe count too
			seq, p := parseAck(t, c.out.Text())
			acked[seq] = p
		}
		c.cmd.Wait()

		s := mustOpen(t, dir, Options{Durability: store.Sync})
		got := map[uint64]string{}
		for from := uint64(0); ; {
			page, err := s.Scan("sub", from, 256)
			must(t, err)
			if len(page) == 0 {
				break
			}
			for _, q := range page {
				got[q.Seq] = string(q.Msg.Payload)
			}
			from = page[len(page)-1].Seq + 1
		}
		n, err := s.QueueLen("sub")
		must(t, err)
		must(t, s.Close())
		missing := 0
		for seq, p := range acked {
			if got[seq] != p {
				missing++
				if missing < 5 {
					t.Errorf("round %d: acknowledged seq %d (%s) not in the store (found %q)", round, seq, p, got[seq])
				}
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged deliveries lost", round, missing, len(acked))
		}
		if n != len(got) {
			t.Fatalf("round %d: QueueLen %d, scanned %d", round, n, len(got))
		}
		t.Logf("round %d: %d acknowledged, %d in the store", round, len(acked), len(got))
	}
}
