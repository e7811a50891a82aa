package hooks

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// RateLimitOptions bound the logins of each source address, so that one
// address guessing passwords cannot keep the plugins busy (or open their
// breakers) for everyone else. Two bounds, each off at 0:
//
//   - failed logins: a token bucket per source, where each failed login
//     spends a token and tokens come back at FailuresPerSecond up to
//     Burst; a source without a token is refused at once, before any
//     plugin is asked;
//   - logins in progress: at most MaxPending per source at once, since
//     the guesses of one flood all start before the first has failed;
//     once a source has failed, no more than the failures it has left.
type RateLimitOptions struct {
	FailuresPerSecond float64 // 0 turns the failure limit off
	Burst             int     // [10]
	MaxPending        int     // 0 turns the bound off
	MaxSources        int     // sources tracked at once [100000]
}

func (o RateLimitOptions) withDefaults() RateLimitOptions {
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.MaxSources <= 0 {
		o.MaxSources = 100000
	}
	return o
}

func (o RateLimitOptions) off() bool { return o.FailuresPerSecond <= 0 && o.MaxPending <= 0 }

// Why a login was refused by the limiter.
const (
	limitNone     = iota
	limitFailures // the source used up its failed logins
	limitPending  // the source has MaxPending logins in progress
	limitSources  // a new source, and MaxSources sources all have logins in progress
)

// loginLimiter keeps the per-source state, bounded by MaxSources so a
// spray of addresses costs a bounded map. A source with a full bucket and
// nothing in progress is dropped at once (that is what an unknown source
// gets anyway), so the map holds only sources that failed lately or have a
// login in progress. To make room, only an idle source (nothing in
// progress), least recently used first, is forgotten: forgetting a busy
// one would let its later end count against a new entry for the same
// address. When every source is busy, a new one is refused.
type loginLimiter struct {
	mu      sync.Mutex
	opts    RateLimitOptions
	now     func() time.Time
	sources map[netip.Prefix]*source
	idle    list.List // of the *source with nothing pending; front: most recently used
}

type source struct {
	key     netip.Prefix
	tokens  float64
	at      time.Time // when tokens was last brought up to date
	pending int
	idle    *list.Element // in loginLimiter.idle while pending is 0, else nil
}

func newLoginLimiter(o RateLimitOptions) *loginLimiter {
	return &loginLimiter{opts: o.withDefaults(), now: time.Now, sources: map[netip.Prefix]*source{}}
}

// configure applies new options (a Reload), keeping what sources spent.
func (l *loginLimiter) configure(o RateLimitOptions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opts = o.withDefaults()
	for len(l.sources) > l.opts.MaxSources && l.idle.Len() > 0 {
		l.forget(l.idle.Back().Value.(*source))
	}
}

// sourceOf is the key of a remote address: the IPv4 address, or the /64
// of an IPv6 one (one host commonly holds a whole /64). ok is false for
// an address that names no IP, which is not limited.
func sourceOf(remote string) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err := netip.ParseAddr(remote)
		if err != nil {
			return netip.Prefix{}, false
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// begin admits a login from key about to be decided, or says why not
// (limitFailures, limitPending, limitSources). An admitted login must be
// ended with end.
func (l *loginLimiter) begin(key netip.Prefix) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.opts.off() {
		return limitNone
	}
	now := l.now()
	s := l.sources[key]
	if s == nil {
		if len(l.sources) >= l.opts.MaxSources {
			if l.idle.Len() == 0 {
				return limitSources
			}
			l.forget(l.idle.Back().Value.(*source))
		}
		s = &source{key: key, tokens: float64(l.opts.Burst), at: now}
		s.idle = l.idle.PushFront(s)
		l.sources[key] = s
	} else if s.idle != nil {
		l.idle.MoveToFront(s.idle)
	}
	l.refill(s, now)
	switch {
	case l.opts.FailuresPerSecond > 0 && s.tokens < float64(l.opts.Burst) && float64(s.pending+1) > s.tokens:
		// A source that failed lately may have no more logins in progress
		// than it has failures left: else every token that comes back
		// would let a whole wave of guesses through at once.
		return limitFailures
	case l.opts.MaxPending > 0 && s.pending >= l.opts.MaxPending:
		return limitPending
	}
	s.pending++
	if s.idle != nil {
		l.idle.Remove(s.idle)
		s.idle = nil
	}
	return limitNone
}

// end closes a login begin admitted; a failed one spends a token.
func (l *loginLimiter) end(key netip.Prefix, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[key]
	if s == nil || s.pending == 0 { // begun while the limit was off (a Reload)
		return
	}
	s.pending--
	l.refill(s, l.now())
	if failed && l.opts.FailuresPerSecond > 0 {
		s.tokens = max(s.tokens-1, 0)
	}
	if s.pending > 0 {
		return
	}
	if s.tokens >= float64(l.opts.Burst) {
		l.forget(s)
		return
	}
	s.idle = l.idle.PushFront(s)
}

// refill brings s's tokens up to now.
func (l *loginLimiter) refill(s *source, now time.Time) {
	if d := now.Sub(s.at); d > 0 {
		s.tokens = min(float64(l.opts.Burst), s.tokens+d.Seconds()*l.opts.FailuresPerSecond)
		s.at = now
	}
}

func (l *loginLimiter) forget(s *source) {
	delete(l.sources, s.key)
	if s.idle != nil {
		l.idle.Remove(s.idle)
	}
}

// tracked is the number of sources held.
func (l *loginLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}
