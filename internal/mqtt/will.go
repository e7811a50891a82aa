// Wills: publishing a client's will when its connection ends abnormally,
// at once or after its MQTT 5 Will Delay.

package mqtt

import "time"

// publishWill routes a will as if its client had published it, once the
// topic check allows that client to publish it now. Nil, or any will while
// the broker is closing, publishes nothing.
func (b *Broker) publishWill(w *clientWill) {
	if w == nil || b.closing.Load() {
		return
	}
	m := w.msg
	if isSysTopic(m.Topic) {
		b.stats.droppedSys.Add(1)
		return
	}
	if !b.willAllowed(w) {
		return
	}
	m.Created = time.Now()
	r := routedFrom(m)
	if m.Retain {
		b.setRetained(&r, nil)
	}
	b.routeStored(&r)
	b.forward(&r)
}

// scheduleWill publishes a will now, or after its MQTT 5 Will Delay unless
// the session is resumed first ([MQTT5-3.1.3-9]); the delay never outlasts
// the session.
func (b *Broker) scheduleWill(s *Session, will *clientWill, delay uint32) {
	b.connMu.Lock()
	s.mu.Lock()
	resumed := s.client != nil || s.movedAway // a new connection took the session over, here or on another node
	cur, _ := b.store.Get(s.id)
	live := cur == s
	if resumed || !live || delay == 0 || s.clean {
		s.mu.Unlock()
		b.connMu.Unlock() // the will's topic check may wait on a plugin
		if !resumed || delay == 0 {
			b.publishWill(will)
		}
		return
	}
	defer b.connMu.Unlock()
	s.willDelay = delay
	b.armWillLocked(s, will, time.Duration(min(delay, s.expiry))*time.Second)
	s.mu.Unlock()
}

// armWillLocked publishes will after d unless the session is resumed or
// ends first. Caller holds s.mu.
func (b *Broker) armWillLocked(s *Session, will *clientWill, d time.Duration) {
	s.pendingWill = will
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.willTimer != t {
			s.mu.Unlock()
			return // cancelled by a reconnect
		}
		s.willTimer, s.pendingWill = nil, nil
		if s.disk.saved {
			b.saveSessionLocked(s) // the will is gone from the stored session too
		}
		s.mu.Unlock()
		b.publishWill(will)
	})
	s.willTimer = t
}
