// Persistence: what the broker writes to Options.Store, and when. Only
// persistent sessions (3.1.1 clean session 0, MQTT 5 Session Expiry > 0)
// and retained messages are written; clean sessions and QoS 0 never touch
// the store. Session records are written under the session lock, so their
// order in the store is the order of the changes they record.

package mqtt

import (
	"errors"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
)

// diskState is what a session knows of its stored copy. Guarded by the
// session lock.
type diskState struct {
	saved  bool // a session record is in the store
	stored int  // deliveries in its stored queue, committed or being committed
	// bytes is what those deliveries count against max-queued-bytes, for
	// the ones stored since the broker started (a restored backlog is
	// bounded by count only).
	bytes int
	// backlog: the store holds queued deliveries from seq from on that are
	// not in memory (after a restart, or when the memory queue was full);
	// they are read in pages as the queue drains. New deliveries are then
	// left in the store, behind them.
	backlog bool
	from    uint64
	loaded  uint64 // highest seq read from the store into memory
	// restored: made from the store at start; its in-flight and inbound
	// QoS 2 packet ids are read when it resumes.
	restored bool
	skip     map[uint64]bool // seqs restored into the in-flight window, not to be read again
}

// queuedLocked is how many deliveries wait for s's window: those in
// memory, or for a session whose queue is in the store, every stored one
// not in flight (a backlog waits on disk, not in memory). Caller holds s.mu.
func (s *Session) queuedLocked() int {
	n := s.queue.len()
	if s.disk.saved {
		n = max(n, s.disk.stored-s.inflight.live)
	}
	return n
}

// persistent reports whether s is to be kept in the store. Caller holds s.mu.
func (b *Broker) persistent(s *Session) bool { return b.disk != nil && !s.clean && !s.movedAway }

// saveSessionLocked writes s's record, or deletes it once s is no longer
// persistent. Caller holds s.mu.
func (b *Broker) saveSessionLocked(s *Session) {
	if b.disk == nil || s.movedAway {
		return
	}
	switch {
	case !s.clean:
		r := b.sessionRecord(s)
		b.write(func(bt *store.Batch) { bt.PutSession(r) })
		s.disk.saved = true
	case s.disk.saved:
		b.forgetSessionLocked(s)
	}
}

// saveOffline writes s's record when its connection has ended and it
// stays: when it went offline (expiry counts from then, across restarts)
// and the delayed will it may leave.
func (b *Broker) saveOffline(s *Session) {
	if b.disk == nil {
		return
	}
	s.mu.Lock()
	if s.client == nil && s.disk.saved && !s.clean {
		b.saveSessionLocked(s)
	}
	s.mu.Unlock()
}

// saveSubscriptions writes c's session after SUBSCRIBE changed it.
func (b *Broker) saveSubscriptions(c *client) {
	if b.disk == nil {
		return
	}
	s := c.sess
	s.mu.Lock()
	if s.client == c && s.disk.saved {
		b.saveSessionLocked(s)
	}
	s.mu.Unlock()
}

// forgetSessionLocked deletes s's stored copy when it ends. Caller holds s.mu.
func (b *Broker) forgetSessionLocked(s *Session) {
	if b.disk == nil || !s.disk.saved {
		return
	}
	s.unstored.Store(true) // before the delete is queued: see commitBatch
	b.write(func(bt *store.Batch) { bt.DeleteSession(s.id) })
	s.disk = diskState{}
}

// sessionRecord is s at rest. While s is online its will is the
// connection's (published should the broker die); offline it is the
// delayed will still pending. Caller holds s.mu.
func (b *Broker) sessionRecord(s *Session) *store.SessionRecord {
	r := &store.SessionRecord{ClientID: s.id, Username: s.owner, Version: s.version, Expiry: s.expiry, OfflineSince: s.offlineSince}
	will := s.will
	if s.client == nil {
		will = nil
		if s.pendingWill != nil {
			will = s.pendingWill.msg
		}
	}
	if will != nil {
		r.Will = messageRecord(will)
		r.WillDelay = s.willDelay
	}
	r.Subs = make([]store.SubscriptionRecord, 0, len(s.subs))
	for f, sub := range s.subs {
		r.Subs = append(r.Subs, store.SubscriptionRecord{Filter: f, QoS: sub.qos, NoLocal: sub.noLocal(),
			RetainAsPublished: sub.rap(), SubscriptionID: sub.subID})
	}
	return r
}

// messageRecord is m at rest.
func messageRecord(m *Message) *store.MessageRecord {
	r := &store.MessageRecord{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, From: m.From, Created: m.Created}
	if m.Props != nil {
		// Only properties a PUBLISH carries reach a Message, so this
		// cannot fail; were it to, the message is kept without them.
		r.Props, _ = packets.AppendMessageProps(nil, m.Props)
	}
	return r
}

// messageFrom is a stored message back in memory.
func messageFrom(r *store.MessageRecord) (*Message, error) {
	m := &Message{Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain, From: r.From, Created: r.Created}
	if len(r.Props) > 0 {
		p, err := packets.DecodeMessageProps(r.Props)
		if err != nil {
			return nil, err
		}
		m.Props = p
	}
	return m, nil
}

// storeRetained changes the retained message of r's topic in memory and
// in the store as one step, so two publishers racing on a topic leave the
// same value in both. r gets a batch (empty if need be): the PUBLISH's
// acknowledgement then waits for a commit, which comes after this write.
func (b *Broker) storeRetained(r *routed) {
	b.write(func(bt *store.Batch) {
		b.applyRetained(r)
		if len(r.payload) == 0 {
			bt.DeleteRetained(r.topic)
		} else {
			bt.PutRetained(messageRecord(r.message()))
		}
	})
	r.batch()
}

// storeDone is the callback of a commit nothing waits for: a failure is
// counted and logged.
func (b *Broker) storeDone(what, clientID string) func(error) {
	return func(err error) {
		if err != nil {
			b.storeFailed(err, what, clientID)
		}
	}
}

// storeFailed counts and logs a failed store write, at most once a second
// at error level so a failed disk does not flood the log. A refusal of a
// store that is unavailable (a full disk) is only counted: the store logs
// when it starts refusing and when it recovers.
func (b *Broker) storeFailed(err error, what, clientID string) {
	b.stats.storeErrors.Add(1)
	if errors.Is(err, store.ErrUnavailable) {
		return
	}
	now := time.Now().UnixNano()
	last := b.storeErrLogged.Load()
	if now-last < int64(time.Second) || !b.storeErrLogged.CompareAndSwap(last, now) {
		return
	}
	b.log.Error("store write failed", "what", what, "client_id", clientID, "error", err,
		"store_errors", b.stats.storeErrors.Load())
}
