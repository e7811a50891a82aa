package cache

import (
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	p := Policy{TTL: time.Minute, DenyTTL: 10 * time.Second, MaxTTL: time.Hour}
	cases := []struct {
		name     string
		answered time.Duration
		given    bool
		deny     bool
		want     time.Duration
	}{
		{"allow, nothing answered: TTL", 0, false, false, time.Minute},
		{"deny, nothing answered: DenyTTL", 0, false, true, 10 * time.Second},
		{"answered wins over TTL", 5 * time.Second, true, false, 5 * time.Second},
		{"answered wins over DenyTTL", 30 * time.Second, true, true, 30 * time.Second},
		{"answered 0: do not store", 0, true, false, 0},
		{"answered 0 on deny: do not store", 0, true, true, 0},
		{"negative: do not store", -time.Second, true, false, 0},
		{"clamped to MaxTTL", 48 * time.Hour, true, false, time.Hour},
	}
	for _, c := range cases {
		if got := p.Lifetime(c.answered, c.given, c.deny); got != c.want {
			t.Errorf("%s: Lifetime = %v, want %v", c.name, got, c.want)
		}
	}
	if got := (Policy{TTL: 0, DenyTTL: time.Second}).Lifetime(0, false, false); got != 0 {
		t.Errorf("TTL 0 must disable storing allows, got %v", got)
	}
	if got := (Policy{TTL: 2 * time.Hour}).Lifetime(0, false, false); got != 2*time.Hour {
		t.Errorf("MaxTTL 0 means unbounded, got %v", got)
	}
}

func TestJitterBounds(t *testing.T) {
	p := Policy{Jitter: 0.1, MaxTTL: time.Hour}
	for _, c := range []struct {
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{time.Minute, 0, 54 * time.Second},
		{time.Minute, 0.5, time.Minute},
		{time.Minute, 1, 66 * time.Second},
		{time.Hour, 1, 54 * time.Minute}, // 66 min folded back under the bound
	} {
		if got := p.jitter(c.d, c.r); got != c.want {
			t.Errorf("jitter(%v, %v) = %v, want %v", c.d, c.r, got, c.want)
		}
	}
}

func TestJitterSpreadsEntriesMadeTogether(t *testing.T) {
	p := Policy{TTL: 100 * time.Second, Jitter: 0.1}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := p.Lifetime(0, false, false)
		lo, hi = min(lo, d), max(hi, d)
		seen[d] = true
	}
	if lo < 90*time.Second || hi > 110*time.Second {
		t.Fatalf("jitter left ±10%%: [%v, %v]", lo, hi)
	}
	// 1000 uniform draws: the chance of all landing within ±5 s is 0.5^1000.
	if lo > 95*time.Second || hi < 105*time.Second || len(seen) < 900 {
		t.Fatalf("lifetimes not spread: [%v, %v], %d distinct", lo, hi, len(seen))
	}
}
