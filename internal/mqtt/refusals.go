package mqtt

import (
	"fmt"
	"sync"
	"time"
)

// Refusal is one refused CONNECT, kept so an operator can see who was turned
// away and why (the admin API and dashboard read them).
type Refusal struct {
	Time       time.Time
	ClientID   string
	Username   string
	RemoteAddr string
	Listener   string
	Protocol   byte   // 3, 4 or 5
	ReasonCode byte   // the MQTT 5 reason code (3.1.1 clients got its 3.1.1 mapping)
	Reason     string // why, in words
	Plugin     string // the plugin alias that decided; "" for the broker's own rules
}

// refusalRingSize bounds the refusals kept: enough for an operator's screen,
// small enough that a login flood cannot grow memory.
const refusalRingSize = 100

// refusalRing keeps the latest refusals, overwriting the oldest.
type refusalRing struct {
	mu   sync.Mutex
	buf  [refusalRingSize]Refusal
	next int // index of the slot the next refusal takes
	n    int // slots filled, at most refusalRingSize
}

func (r *refusalRing) add(f Refusal) {
	r.mu.Lock()
	r.buf[r.next] = f
	r.next = (r.next + 1) % refusalRingSize
	if r.n < refusalRingSize {
		r.n++
	}
	r.mu.Unlock()
}

// latest returns the kept refusals, newest first.
func (r *refusalRing) latest() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Refusal, r.n)
	for i := range out {
		out[i] = r.buf[(r.next-1-i+2*refusalRingSize)%refusalRingSize]
	}
	return out
}

// RecentRefusals returns the latest refused CONNECTs (at most 100), newest
// first.
func (b *Broker) RecentRefusals() []Refusal { return b.refusals.latest() }

// refused records a refused CONNECT: one info record for the operator's log
// and an entry in the refusal ring.
func (b *Broker) refused(f Refusal) {
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	b.refusals.add(f)
	b.log.Info("connection refused", "client_id", f.ClientID, "username", f.Username, "remote", f.RemoteAddr,
		"listener", f.Listener, "protocol", int(f.Protocol), "reason_code", reasonCode(f.ReasonCode),
		"reason", f.Reason, "plugin", f.Plugin)
}

// reasonCode formats an MQTT reason code for the log, as the specification
// writes them (0x87).
func reasonCode(code byte) string { return fmt.Sprintf("0x%02x", code) }
