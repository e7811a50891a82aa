package cache

import (
	"math/rand/v2"
	"time"
)

// Policy decides how long a decision stays fresh (docs/design.md §4).
type Policy struct {
	TTL     time.Duration // allow and ignore, when the answer says nothing
	DenyTTL time.Duration // deny, when the answer says nothing: shorter, so a fixed account recovers soon
	MaxTTL  time.Duration // upper bound on anything, answered or configured; 0 = none
	Jitter  float64       // ±fraction applied to every lifetime, e.g. 0.1
}

// Lifetime returns how long a decision may be reused. answered is the TTL
// the plugin gave (cache_ttl or Cache-Control max-age) when given is true;
// deny picks the default for denials. A result <= 0 means "do not store":
// the plugin said 0 or no-store, or the configured TTL is 0.
func (p Policy) Lifetime(answered time.Duration, given, deny bool) time.Duration {
	d := p.TTL
	switch {
	case given:
		d = answered
	case deny:
		d = p.DenyTTL
	}
	if d <= 0 {
		return 0
	}
	if p.MaxTTL > 0 && d > p.MaxTTL {
		d = p.MaxTTL
	}
	return p.jitter(d, rand.Float64())
}

// jitter spreads d over [d(1-j), d(1+j)] by r in [0,1), so a thousand
// clients that connected together during a reconnect storm do not all miss
// together a TTL later. A result past MaxTTL is folded back under it, which
// keeps the bound hard without piling entries up exactly at the bound.
func (p Policy) jitter(d time.Duration, r float64) time.Duration {
	if p.Jitter <= 0 {
		return d
	}
	out := time.Duration(float64(d) * (1 + p.Jitter*(2*r-1)))
	if p.MaxTTL > 0 && out > p.MaxTTL {
		out = 2*p.MaxTTL - out
	}
	return max(out, 1)
}
