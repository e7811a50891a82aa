// Packet dispatch for a connected client, protocol errors, DISCONNECT and re-authentication (AUTH).

package mqtt

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// protoError ends a connection for a protocol reason; MQTT 5 clients are
// told Code in a DISCONNECT first.
type protoError struct {
	Code packets.ReasonCode
	Msg  string
}

func (e *protoError) Error() string { return e.Msg }

var (
	errSecondConnect = &protoError{packets.ProtocolError, "second CONNECT"}
	errTooManyQoS2   = &protoError{packets.ReceiveMaxExceeded, "too many QoS 2 messages awaiting PUBREL"}
	errClientSubID   = &protoError{packets.ProtocolError, "PUBLISH from a client carries a Subscription Identifier"}
	errUnknownAlias  = &protoError{packets.ProtocolError, "PUBLISH uses a topic alias never set"}
	errAliasRange    = &protoError{packets.TopicAliasInvalid, "topic alias out of range"}
	errExpiryFrom0   = &protoError{packets.ProtocolError, "DISCONNECT sets a session expiry on a session that had none"}
	errQoSNotOffered = &protoError{packets.QoSNotSupported, "PUBLISH above the server's maximum QoS"}
	errNoRetain      = &protoError{packets.RetainNotSupported, "retained PUBLISH while retain is not available"}
	errNoSubIDs      = &protoError{packets.SubIDsNotSupported, "SUBSCRIBE with a Subscription Identifier while they are not available"}
	errPubDenied     = &protoError{packets.NotAuthorized, "PUBLISH denied by the topic check (topic-check.deny-publish: disconnect)"}
)

// handle dispatches one inbound packet of a connected client.
func (c *client) handle(fh packets.FixedHeader, body []byte) error {
	if c.b.evMask().Has(EventPacketReceived) {
		c.b.emitPacketReceived(&c.info, fh, body, c.version)
	}
	switch fh.Type {
	case packets.PUBLISH:
		return c.onPublish(fh, body)
	case packets.PUBACK:
		var p packets.Puback
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBACK, p.ReasonCode)
	case packets.PUBREC:
		var p packets.Pubrec
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBREC, p.ReasonCode)
	case packets.PUBREL:
		var p packets.Pubrel
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onPubrel(p.PacketID)
	case packets.PUBCOMP:
		var p packets.Pubcomp
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBCOMP, p.ReasonCode)
	case packets.SUBSCRIBE:
		return c.onSubscribe(fh, body)
	case packets.UNSUBSCRIBE:
		return c.onUnsubscribe(fh, body)
	case packets.PINGREQ:
		var p packets.Pingreq
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		// [MQTT-3.12.4-1] answer PINGREQ with PINGRESP.
		c.send(func() { c.appendSimple(packets.PINGRESP) })
	case packets.DISCONNECT:
		var p packets.Disconnect
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		return c.onDisconnect(&p)
	case packets.AUTH:
		var p packets.Auth
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		return c.onAuth(&p)
	case packets.CONNECT:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return errSecondConnect
	default:
		return &protoError{packets.ProtocolError, fmt.Sprintf("client sent %v, which only a server may send", fh.Type)}
	}
	return nil
}

// send runs fn (which appends to the write buffer) under the session lock
// and wakes the writer.
func (c *client) send(fn func()) {
	s := c.sess
	s.mu.Lock()
	fn()
	c.wakeWriterLocked()
	s.mu.Unlock()
}

// onDisconnect ends the connection at the client's request. [MQTT-3.14.4-3]
// DISCONNECT discards the will, except MQTT 5's "disconnect with will".
func (c *client) onDisconnect(p *packets.Disconnect) error {
	c.graceful = true
	if c.version != packets.V5 {
		return nil
	}
	if p.Props.Has(packets.PropSessionExpiry) {
		s := c.sess
		s.mu.Lock()
		if s.expiry == 0 && p.Props.SessionExpiry != 0 {
			s.mu.Unlock()
			return errExpiryFrom0 // 5.0 §3.14.2.2.2
		}
		s.expiry = capExpiry(p.Props.SessionExpiry, c.b.limits.SessionExpiry)
		s.clean = s.expiry == 0
		s.mu.Unlock()
	}
	if p.ReasonCode == packets.DisconnectWithWill {
		c.keepWill = true
	}
	return nil
}
