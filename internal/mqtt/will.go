// Wills: publishing a client's will when its connection ends abnormally,
// at once or after its MQTT 5 Will Delay.

package mqtt

import "time"

// publishWill routes a will as if its client had published it.
func (b *Broker) publishWill(m *Message) {
	if isSysTopic(m.Topic) {
		b.stats.droppedSys.Add(1)
		return
	}
	m.Created = time.Now()
	r := routedFrom(m)
	if m.Retain {
		b.setRetained(&r, nil)
	}
	b.route(&r, nil)
}

// scheduleWill publishes a will now, or after its MQTT 5 Will Delay unless
// the session is resumed first ([MQTT-3.1.3-9]); the delay never outlasts
// the session.
func (b *Broker) scheduleWill(s *Session, will *Message, delay uint32) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	s.mu.Lock()
	resumed := s.client != nil // a new connection took the session over
	cur, _ := b.store.Get(s.id)
	live := cur == s
	if resumed || !live || delay == 0 || s.clean {
		s.mu.Unlock()
		if !resumed || delay == 0 {
			b.publishWill(will)
		}
		return
	}
	d := time.Duration(min(delay, s.expiry)) * time.Second
	s.pendingWill = will
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.willTimer != t {
			s.mu.Unlock()
			return // cancelled by a reconnect
		}
		s.willTimer, s.pendingWill = nil, nil
		s.mu.Unlock()
		if !b.closing.Load() {
			b.publishWill(will)
		}
	})
	s.willTimer = t
	s.mu.Unlock()
}
