// Attaching an accepted client to its session: resume or fresh start, takeover, CONNACK and resend.

package mqtt

import (
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// attach binds the accepted client to its session: a fresh one for a clean
// start, else the stored one (session present) when the same identity made
// it. An older connection with the same id is closed first ([MQTT-3.1.4-2],
// [MQTT5-3.1.4-3]). A session it discards may leave a delayed will to publish.
func (c *client) attach(cleanStart bool, expiry uint32, ack *packets.Properties) {
	b := c.b
	b.connMu.Lock()
	will := c.attachLocked(cleanStart, expiry, ack)
	b.connMu.Unlock()
	b.publishWill(will)
	n := b.stats.clientsConnected.Add(1)
	b.stats.clientsTotal.Add(1)
	for {
		m := b.stats.clientsMaximum.Load()
		if n <= m || b.stats.clientsMaximum.CompareAndSwap(m, n) {
			break
		}
	}
}

// attachLocked is attach under connMu.
func (c *client) attachLocked(cleanStart bool, expiry uint32, ack *packets.Properties) *clientWill {
	b := c.b
	id := c.info.ClientID
	owner := c.identity()

	old, found := b.store.Get(id)
	resume := found && !cleanStart && !old.clean && old.owner == owner
	if found {
		old.mu.Lock()
		prev := old.client
		old.client = nil
		old.resuming = resume
		old.mu.Unlock()
		if prev != nil {
			b.stats.takeovers.Add(1)
			prev.closeTakenOver()
		}
		if resume && b.opts.takingOver != nil {
			b.opts.takingOver()
		}
	}
	var s *Session
	var will *clientWill
	present := false
	if found && !cleanStart && !old.clean && old.owner != owner {
		// A session belongs to the identity that made it: another user
		// (or certificate) naming its client id starts afresh, so nothing
		// addressed to the first one reaches it.
		b.log.Info("session not resumed: the client id is now used by another identity",
			"client_id", id, "username", c.info.Username, "remote", c.info.RemoteAddr, "listener", c.info.Listener)
	}
	if resume {
		s, present = old, true
	} else {
		if found {
			will = b.discardSession(old)
		}
		s = newSession(id, expiry == 0)
		s.owner = owner
		b.store.Put(s)
	}
	c.sess = s
	c.connectedAt = time.Now()

	s.mu.Lock()
	s.client = c
	s.resuming = false
	if len(s.waiters) > 0 {
		// Publishers held while the session changed hands wait for this
		// connection now.
		b.watchBehindLocked(s)
	}
	s.clean = expiry == 0
	s.expiry = expiry
	s.window = b.limits.MaxInflight
	if c.version == packets.V5 {
		// [MQTT5-3.3.4-9] no more unacknowledged QoS 1/2 than the client's
		// Receive Maximum.
		s.window = min(s.window, c.recvMax)
	}
	s.offlineSince = time.Time{}
	if s.willTimer != nil {
		// [MQTT5-3.1.3-9] reconnecting within the Will Delay cancels the will.
		s.willTimer.Stop()
		s.willTimer, s.pendingWill = nil, nil
	}
	s.version, s.will, s.willDelay = byte(c.version), c.will, c.willDelay
	if b.disk != nil {
		b.loadRestoredLocked(s)
		b.saveSessionLocked(s)
	}
	b.markGrantsLocked(s, c.info.Login())
	connack := &packets.Connack{SessionPresent: present, ReasonCode: packets.Success}
	if c.version == packets.V5 {
		connack.Props = *ack
		b.serverCaps(&connack.Props)
	}
	c.appendControl(connack)
	c.resendInflight(s)
	if b.disk != nil {
		b.refillLocked(s)
	}
	b.pumpLocked(s, false)
	c.wakeWriterLocked()
	s.mu.Unlock()
	return will
}

// identity is who a session belongs to: the user name and, with mutual
// TLS, the client certificate's subject.
func (c *client) identity() string {
	id := c.info.Username
	if len(c.info.PeerCerts) > 0 {
		id += "\x00" + c.info.PeerCerts[0].Subject.String()
	}
	return id
}

// serverCaps adds the broker's limits to an MQTT 5 CONNACK, leaving out
// the ones that equal the protocol defaults.
func (b *Broker) serverCaps(p *packets.Properties) {
	if b.limits.MaxInboundQoS2 < 65535 {
		p.ReceiveMaximum = uint16(b.limits.MaxInboundQoS2)
	}
	p.MaximumPacketSize = uint32(b.limits.MaxPacketSize)
	p.TopicAliasMaximum = b.limits.TopicAliasMaximum
	// The rest default to "available": say so only when switched off,
	// marking the zero values present.
	f := b.opts.Features
	if q := f.maxQoS(); q < 2 {
		p.MaximumQoS = q
		p.Set(packets.PropMaximumQoS)
	}
	for _, off := range []struct {
		is bool
		id packets.PropID
	}{
		{f.NoRetain, packets.PropRetainAvailable},
		{f.NoWildcardSubs, packets.PropWildcardSubAvailable},
		{f.NoSharedSubs, packets.PropSharedSubAvailable},
		{f.NoSubscriptionIDs, packets.PropSubIDAvailable},
	} {
		if off.is {
			p.Set(off.id)
		}
	}
}

// resendInflight resends unacknowledged PUBLISH (with DUP) and PUBREL
// packets, in their original order, when a session resumes
// ([MQTT-4.4.0-1]). Messages that expired meanwhile are dropped. Caller
// holds s.mu.
func (c *client) resendInflight(s *Session) {
	s.inflight.retire(func(e *inflightEntry) bool {
		if e.state == awaitComp {
			c.appendAck(packets.PUBREL, e.pid, 0, "")
			return false
		}
		if !c.appendDelivery(&e.d, e.pid, true) {
			c.b.dropStoredLocked(s, e.pid, &e.d)
			return true
		}
		return false
	})
}
