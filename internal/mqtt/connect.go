package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

var errNotConnect = errors.New("first packet is not CONNECT")

// handshake reads and answers CONNECT. It returns nil once the client is
// accepted and its session attached; on error the caller closes the socket.
// Nothing about any session changes before the client is accepted: a refused
// CONNECT cannot disturb the session or connection of the id it names.
func (c *client) handshake() error {
	b := c.b
	c.connectDeadline = time.Now().Add(b.limits.ConnectTimeout)
	fh, body, err := c.r.next()
	if err != nil {
		var pe *packets.Error
		if errors.As(err, &pe) || errors.Is(err, errPacketTooLarge) {
			b.stats.malformed.Add(1)
		}
		return err
	}
	c.pktsIn++
	// [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
	if fh.Type != packets.CONNECT {
		b.stats.malformed.Add(1)
		return errNotConnect
	}
	var p packets.Connect
	err = p.Decode(fh, body, 0)
	if errors.Is(err, packets.ErrUnsupportedVersion) || (err == nil && p.ProtocolVersion == packets.V5) {
		// [MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01, then close.
		c.refuse(packets.ConnRefusedProtocolVersion)
		return fmt.Errorf("unsupported protocol level %d", p.ProtocolVersion)
	}
	if err != nil {
		b.stats.malformed.Add(1)
		return err
	}
	c.version = p.ProtocolVersion
	if b.evMask.Has(EventPacketReceived) {
		b.emit(&Event{Type: EventPacketReceived, Packet: &p})
	}

	c.info.ClientID = strings.Clone(p.ClientID)
	c.info.Username = strings.Clone(p.Username)
	c.info.ProtocolVersion = byte(p.ProtocolVersion)
	c.info.CleanStart = p.CleanStart
	c.info.KeepAlive = p.KeepAlive
	if c.info.ClientID == "" {
		// [MQTT-3.1.3-8] an empty id needs a clean session; [MQTT-3.1.3-6] then
		// the server assigns one.
		if !p.CleanStart {
			c.refuse(packets.ConnRefusedIdentifierRejected)
			return errors.New("empty client id without clean session")
		}
		c.info.ClientID = assignClientID()
		c.info.AssignedID = true
	}
	if max := b.limits.MaxKeepAlive; max > 0 && (p.KeepAlive == 0 || p.KeepAlive > max) {
		// 3.1.1 cannot tell a client to ping more often: refuse it, as
		// Mosquitto's max_keepalive does, rather than cut it later.
		c.refuse(packets.ConnRefusedIdentifierRejected)
		return fmt.Errorf("keep alive %ds exceeds the maximum %ds", p.KeepAlive, max)
	}
	c.keepAlive = time.Duration(p.KeepAlive) * time.Second

	if b.hooks.Auth != nil {
		res := b.hooks.Auth.Authenticate(c.ctx, &c.info, p.Password)
		if !res.Allow {
			b.stats.authRejected.Add(1)
			code := packets.ReasonCode(res.ReasonCode)
			if code == 0 {
				code = packets.NotAuthorized
			}
			c.refuse(packets.ConnackCodeV3(code))
			return fmt.Errorf("not authorized: %s", res.Reason)
		}
	}
	if p.WillFlag {
		c.will = &Message{
			Topic:   strings.Clone(p.WillTopic),
			Payload: append([]byte{}, p.WillPayload...),
			QoS:     p.WillQoS,
			Retain:  p.WillRetain,
			From:    c.info.ClientID,
		}
	}
	c.attach(p.CleanStart)
	b.log.Debug("client connected", "client_id", c.info.ClientID, "remote", c.info.RemoteAddr, "listener", c.info.Listener)
	b.emit(&Event{Type: EventClientConnected, Client: &c.info})
	return nil
}

// refuse answers a CONNECT with a non-zero return code ([MQTT-3.2.2-4]:
// session present 0) before the connection is closed.
func (c *client) refuse(code packets.ReasonCode) {
	ack := packets.Connack{ReasonCode: code}
	buf, _ := ack.Append(nil, packets.V311)
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.Write(buf)
	c.b.stats.bytesOut.Add(int64(len(buf)))
	c.b.stats.pktsOut.Add(1)
	c.b.emitSent(&c.info, buf, packets.V311)
}

// refuse turns away a connection over MaxConnections: it reads the CONNECT
// (briefly) so the answer can be a proper CONNACK "server unavailable".
func (b *Broker) refuse(conn net.Conn) {
	b.stats.connsRefused.Add(1)
	b.log.Warn("connection refused: max-connections reached", "remote", conn.RemoteAddr().String(), "max", b.limits.MaxConnections)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := packetReader{conn: conn, max: 4096}
	if fh, _, err := r.next(); err == nil && fh.Type == packets.CONNECT {
		ack := packets.Connack{ReasonCode: packets.ConnRefusedServerUnavailable}
		buf, _ := ack.Append(nil, packets.V311)
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(buf)
	}
	conn.Close()
}

// attach binds the accepted client to its session: a fresh one for a clean
// start, else the stored one (session present). An older connection with the
// same id is closed first ([MQTT-3.1.4-2]).
func (c *client) attach(clean bool) {
	b := c.b
	id := c.info.ClientID
	b.connMu.Lock()
	defer b.connMu.Unlock()

	old, found := b.store.Get(id)
	if found {
		old.mu.Lock()
		prev := old.client
		old.client = nil
		old.mu.Unlock()
		if prev != nil {
			b.stats.takeovers.Add(1)
			prev.takenOver.Store(true)
			prev.conn.Close()
		}
	}
	var s *Session
	present := false
	if found && !clean && !old.clean {
		s, present = old, true
	} else {
		if found {
			b.discardSession(old)
		}
		s = newSession(id, clean)
		b.store.Put(s)
	}
	c.sess = s

	s.mu.Lock()
	s.client = c
	s.clean = clean
	s.offlineSince = time.Time{}
	mark := len(c.out)
	ack := packets.Connack{SessionPresent: present, ReasonCode: packets.Success}
	c.out, _ = ack.Append(c.out, c.version)
	c.outPkts++
	if b.evMask.Has(EventPacketSent) {
		b.emitSent(&c.info, c.out[mark:], c.version)
	}
	// [MQTT-4.4.0-1] resend unacknowledged PUBLISH (with DUP) and PUBREL
	// packets, in their original order, when a session resumes.
	s.inflight.each(func(e *inflightEntry) {
		if e.state == awaitComp {
			c.appendAck(packets.PUBREL, e.pid)
		} else {
			c.appendPublish(e.d.msg.Topic, e.d.msg.Payload, e.d.qos, e.pid, e.d.retain, true)
		}
	})
	b.pumpLocked(s)
	c.kickLocked()
	s.mu.Unlock()

	n := b.stats.clientsConnected.Add(1)
	b.stats.clientsTotal.Add(1)
	for {
		m := b.stats.clientsMaximum.Load()
		if n <= m || b.stats.clientsMaximum.CompareAndSwap(m, n) {
			break
		}
	}
}

func assignClientID() string {
	var r [12]byte
	rand.Read(r[:])
	return "mqttd-" + hex.EncodeToString(r[:])
}
