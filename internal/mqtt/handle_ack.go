// Acknowledgements from the client: PUBREL ending an inbound QoS 2 flow, PUBACK/PUBREC/PUBCOMP advancing outbound ones.

package mqtt

import "github.com/mqttd/mqttd/internal/mqtt/packets"

// onPubrel ends an inbound QoS 2 flow with PUBCOMP.
func (c *client) onPubrel(pid uint16) {
	s := c.sess
	s.mu.Lock()
	code := packets.Success
	_, held := s.inQoS2[pid]
	if !held {
		code = packets.PacketIDNotFound
	}
	delete(s.inQoS2, pid)
	var pb *pubBatch
	if held && c.b.persistent(s) && s.disk.saved {
		// PUBCOMP once the id is released in the store too: a client may
		// reuse it at once, and a restart must not take that PUBLISH for
		// a resend.
		pb = new(pubBatch)
		pb.b.RemoveQoS2In(s.id, pid)
	}
	s.mu.Unlock()
	// [MQTT-4.3.3-2] PUBCOMP even for an id we no longer hold: the client
	// may be retrying after we already completed it.
	c.ackAfter(pb, nil, packets.PUBCOMP, pid, code, "")
}

// onAck advances an outbound QoS 1/2 flow.
func (c *client) onAck(pid uint16, t packets.Type, code packets.ReasonCode) {
	b := c.b
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.inflight.find(pid)
	switch t {
	case packets.PUBACK:
		if e == nil || e.d.qos != 1 {
			return
		}
		b.storeAckLocked(s, pid, &e.d, false)
		s.inflight.done(e)
	case packets.PUBREC:
		switch {
		case e != nil && e.d.qos == 2 && e.state == awaitAck && code >= 0x80:
			// [MQTT5-4.3.3-4], [MQTT5-4.4.0-2] the client refused the message: the flow ends.
			b.storeAckLocked(s, pid, &e.d, false)
			s.inflight.done(e)
		case e != nil && e.d.qos == 2 && e.state == awaitAck:
			b.storeAckLocked(s, pid, &e.d, true)
			e.state = awaitComp
			e.d.msg = nil // [MQTT-4.3.3-1] the message is delivered; only the id remains
			fallthrough
		case e != nil && e.state == awaitComp:
			c.appendAck(packets.PUBREL, pid, 0, "")
			c.wakeOwnLocked()
			return
		default:
			if c.version == packets.V5 {
				c.appendAck(packets.PUBREL, pid, packets.PacketIDNotFound, "")
				c.wakeOwnLocked()
			}
			return
		}
	case packets.PUBCOMP:
		if e == nil || e.state != awaitComp {
			return
		}
		b.storeCompLocked(s, pid, e.d.seq)
		s.inflight.done(e)
	}
	if b.disk != nil {
		b.refillLocked(s)
	}
	b.pumpLocked(s, true)
}
