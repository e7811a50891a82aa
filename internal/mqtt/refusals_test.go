package mqtt

import (
	"fmt"
	"testing"
)

func TestRefusalRingKeepsNewestFirst(t *testing.T) {
	var r refusalRing
	if got := r.latest(); len(got) != 0 {
		t.Fatalf("empty ring: %d refusals", len(got))
	}
	for i := range refusalRingSize + 7 {
		r.add(Refusal{ClientID: fmt.Sprint(i)})
	}
	got := r.latest()
	if len(got) != refusalRingSize {
		t.Fatalf("kept %d, want %d", len(got), refusalRingSize)
	}
	for i, f := range got {
		if want := fmt.Sprint(refusalRingSize + 6 - i); f.ClientID != want {
			t.Fatalf("slot %d: %q, want %q", i, f.ClientID, want)
		}
	}
}
