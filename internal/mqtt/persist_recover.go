// Recovery: at Start, the persistent sessions (with their subscriptions,
// expiry and delayed wills) and the retained messages are read back from
// Options.Store. Queues are not: each is read in pages when its session
// resumes, so recovery costs in proportion to sessions, not messages.

package mqtt

import (
	"fmt"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// RecoveryProgress is how far recovery from the store has come.
type RecoveryProgress struct {
	Sessions int           // persistent sessions restored so far
	Expired  int           // sessions found expired (removed, their wills published)
	Retained int           // retained messages restored so far
	Elapsed  time.Duration // since recovery began
	Done     bool          // recovery is complete
}

// recoveryReportEvery is how many sessions pass between progress reports.
const recoveryReportEvery = 10000

// recover loads what the store holds. It runs in Start before any
// listener opens, so no client sees a half-recovered broker (Ready is
// false until then).
func (b *Broker) recover() error {
	if b.disk == nil {
		return nil
	}
	start := time.Now()
	var p RecoveryProgress
	report := func() {
		p.Elapsed = time.Since(start)
		if b.opts.OnRecovery != nil {
			b.opts.OnRecovery(p)
		}
		b.log.Info("recovering from the store", "sessions", p.Sessions, "expired", p.Expired,
			"retained", p.Retained, "elapsed", p.Elapsed.String(), "done", p.Done)
	}
	var due []*clientWill // wills whose delay ran out while the broker was down
	sessions := b.disk.Sessions
	if b.sharedStore() {
		// The store is the cluster's: a session is loaded by the node its
		// client connects to, or that adopts it when its node is gone.
		sessions = func(func(*store.SessionRecord) error) error { return nil }
	}
	err := sessions(func(r *store.SessionRecord) error {
		w, restored := b.restoreSession(r, start)
		if w != nil {
			due = append(due, w)
		}
		if restored {
			p.Sessions++
		} else {
			p.Expired++
		}
		if (p.Sessions+p.Expired)%recoveryReportEvery == 0 {
			report()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mqtt: recovering sessions from the store: %w", err)
	}
	if p.Sessions > 0 {
		// The restored subscriptions were announced to the other nodes;
		// until they have taken them in, a message published there can
		// skip this node. The listeners (and readiness) wait, as a SUBACK
		// does, bounded by the cluster's interest timeout.
		b.clusterSubscribed()
	}
	err = b.disk.Retained(func(r *store.MessageRecord) error {
		m, err := messageFrom(r)
		if err != nil {
			return fmt.Errorf("retained message %q: %w", r.Topic, err)
		}
		b.retain.Set(m.Topic, m)
		p.Retained++
		return nil
	})
	if err != nil {
		return fmt.Errorf("mqtt: recovering retained messages from the store: %w", err)
	}
	for _, w := range due {
		b.publishWill(w)
	}
	p.Done = true
	report()
	return nil
}

// restoreSession puts a stored session back: in the session map and its
// subscriptions in the topic trees, with its expiry counted from when it
// went offline (for a broker that died, from now). A session that expired
// while the broker was down is removed; its will, and a delayed will whose
// delay ran out, is returned to publish.
func (b *Broker) restoreSession(r *store.SessionRecord, now time.Time) (due *clientWill, restored bool) {
	return b.restoreInto(newSession(r.ClientID, false), r, now, true)
}

// restoreInto is restoreSession into s, which may be in the session map
// already (preloaded from an older record of a shared store): its
// subscriptions become the record's, and its queue and packet ids are
// read from the store afresh. withWill false leaves the record's will out.
// Caller holds connMu when s may be in the map.
func (b *Broker) restoreInto(s *Session, r *store.SessionRecord, now time.Time, withWill bool) (due *clientWill, restored bool) {
	since := r.OfflineSince
	if since.IsZero() {
		since = now // it was online when the broker stopped
	}
	var will *clientWill
	if r.Will != nil && withWill {
		if m, err := messageFrom(r.Will); err == nil {
			will = &clientWill{msg: m, client: restoredClientInfo(r)}
		}
	}
	offline := now.Sub(since)
	if r.Expiry != store.NeverExpires && offline >= time.Duration(r.Expiry)*time.Second {
		b.write(func(bt *store.Batch) { bt.DeleteSession(r.ClientID) })
		return will, false
	}
	n, err := b.disk.QueueLen(r.ClientID)
	if err != nil {
		b.storeFailed(err, "read queue length", r.ClientID)
	}
	s.mu.Lock()
	s.owner, s.version, s.expiry = r.Username, r.Version, r.Expiry
	s.offlineSince = since
	s.queue.reset()
	s.disk = diskState{saved: true, restored: true, backlog: n > 0, stored: n}
	keep := make(map[string]bool, len(r.Subs))
	for _, sr := range r.Subs {
		sub := subscription{qos: sr.QoS, subID: sr.SubscriptionID}
		if sr.NoLocal {
			sub.opts |= subNoLocal
		}
		if sr.RetainAsPublished {
			sub.opts |= subRAP
		}
		keep[sr.Filter] = true
		old, had := s.subs[sr.Filter]
		if had && old == sub {
			continue
		}
		s.subs[sr.Filter] = sub
		if group, inner, ok := parseShared(sr.Filter); ok && group != "" {
			b.subscribeShared(s, group, inner, shareSub{sub, sr.Filter}, had)
			if !had {
				b.interest(sr.Filter, true)
			}
		} else if b.subs.Subscribe(sr.Filter, s, sub) {
			b.interest(sr.Filter, true)
		}
	}
	for f := range s.subs {
		if !keep[f] {
			b.unsubscribe(s, f)
			delete(s.subs, f)
		}
	}
	b.store.Put(s)
	if will != nil {
		left := time.Duration(min(r.WillDelay, r.Expiry))*time.Second - offline
		if left <= 0 {
			b.saveSessionLocked(s) // without the will, which goes out now
			s.mu.Unlock()
			return will, true
		}
		s.willDelay = r.WillDelay
		b.armWillLocked(s, will, left)
	}
	s.mu.Unlock()
	return nil, true
}

// restoredClientInfo is who a restored will is published as, for the
// topic check: the client id and user name its session was made with.
func restoredClientInfo(r *store.SessionRecord) *ClientInfo {
	user, _, _ := strings.Cut(r.Username, "\x00") // the identity may add a certificate subject
	return &ClientInfo{ClientID: r.ClientID, Username: user, ProtocolVersion: r.Version}
}
