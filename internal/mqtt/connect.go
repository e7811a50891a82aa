// CONNECT: reading and validating it, the handshake that accepts or refuses the client.

package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

var (
	errNotConnect  = errors.New("first packet is not CONNECT")
	errAuthProto   = errors.New("AUTH exchange broken by the client")
	errAuthMissing = errors.New("no authenticator supports the client's authentication method")
)

// handshake reads and answers CONNECT. It returns nil once the client is
// accepted and its session attached; on error the caller closes the socket.
// Nothing about any session changes before the client is accepted: a refused
// CONNECT cannot disturb the session or connection of the id it names.
// The steps: read and decode CONNECT → take the client's identity and keep
// alive → check its will → authenticate → store the will → attach the session.
func (c *client) handshake() error {
	b := c.b
	var p packets.Connect
	if err := c.readConnect(&p); err != nil {
		return err
	}
	var ack packets.Properties // CONNACK properties (MQTT 5)
	if err := c.takeConnect(&p, &ack); err != nil {
		return err
	}
	if err := c.checkWill(&p); err != nil {
		return err
	}
	authData, err := c.authenticate(&p)
	if err != nil {
		return err
	}
	if authData != nil || c.authMethod != "" {
		ack.AuthMethod = c.authMethod
		ack.AuthData = authData
	}
	c.storeWill(&p)
	expiry := c.sessionExpiry(&p, &ack)
	if err := c.claimSession(p.CleanStart); err != nil {
		return err
	}
	c.attach(p.CleanStart, expiry, &ack)
	c.r.max, c.r.wary = b.limits.MaxPacketSize, false // authenticated
	b.log.Info("client connected", "client_id", c.info.ClientID, "username", c.info.Username,
		"remote", c.info.RemoteAddr, "listener", c.info.Listener, "protocol", int(c.info.ProtocolVersion))
	b.emit(&Event{Type: EventClientConnected, Client: &c.info})
	return nil
}

// readConnect reads the first packet, which must be a CONNECT of a
// supported protocol level, into p, and sets the connection's version.
func (c *client) readConnect(p *packets.Connect) error {
	b := c.b
	c.connectDeadline = time.Now().Add(b.limits.ConnectTimeout)
	fh, body, err := c.r.next()
	if err != nil {
		var pe *packets.Error
		if errors.As(err, &pe) || errors.Is(err, errPacketTooLarge) {
			b.stats.malformed.Add(1)
		}
		if errors.Is(err, errPacketTooLarge) && fh.Type == packets.CONNECT {
			c.refuseTooLarge(fh.Remaining)
		}
		return err
	}
	c.pktsIn++
	// [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
	if fh.Type != packets.CONNECT {
		b.stats.malformed.Add(1)
		return errNotConnect
	}
	err = p.Decode(fh, body, 0)
	if errors.Is(err, packets.ErrUnsupportedVersion) {
		// [MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01 in the
		// 3.1.1 format, then close.
		c.refuseConnect(packets.UnsupportedProtocolVersion, "")
		return fmt.Errorf("unsupported protocol level %d", p.ProtocolVersion)
	}
	if err != nil {
		b.stats.malformed.Add(1)
		if p.ProtocolVersion == packets.V5 {
			// [MQTT5-3.1.4-1] close; a v5 server may say why first (5.0 §4.13.1).
			c.version = packets.V5
			c.refuseConnect(packets.CodeOf(err), err.Error())
		}
		return err
	}
	c.version = p.ProtocolVersion
	return nil
}

// takeConnect records who the client says it is (assigning a client id
// when it gave none) and settles its keep alive, adding to ack what an
// MQTT 5 client must be told.
func (c *client) takeConnect(p *packets.Connect, ack *packets.Properties) error {
	v5 := c.version == packets.V5
	c.info.ClientID = strings.Clone(p.ClientID)
	c.info.Username = strings.Clone(p.Username)
	c.info.ProtocolVersion = byte(p.ProtocolVersion)
	c.info.CleanStart = p.CleanStart
	c.info.KeepAlive = p.KeepAlive
	if v5 {
		c.readConnectProps(&p.Props)
	}
	// 3.1.1: [MQTT-3.1.3-8] an empty id needs a clean session, and
	// [MQTT-3.1.3-6] then the server assigns one. MQTT 5 assigns one
	// either way and says which ([MQTT5-3.2.2-16]).
	if c.info.ClientID == "" && (v5 || p.CleanStart) {
		c.info.ClientID = assignClientID()
		c.info.AssignedID = true
		ack.AssignedClientID = c.info.ClientID
	}
	c.b.emitConnectReceived(&c.info, p)
	if c.info.ClientID == "" {
		c.refuseConnect(packets.ClientIDNotValid, "")
		return errors.New("empty client id without clean session")
	}
	keepAlive := p.KeepAlive
	if max := c.b.limits.MaxKeepAlive; max > 0 && (keepAlive == 0 || keepAlive > max) {
		if !v5 {
			// 3.1.1 cannot tell a client to ping more often: refuse it, as
			// Mosquitto's max_keepalive does, rather than cut it later.
			c.refuseConnect(packets.ClientIDNotValid, "")
			return fmt.Errorf("keep alive %ds exceeds the maximum %ds", p.KeepAlive, max)
		}
		// [MQTT5-3.2.2-21] the client must use the Server Keep Alive.
		keepAlive = max
		ack.ServerKeepAlive = max
	}
	c.keepAlive = time.Duration(keepAlive) * time.Second
	return nil
}

// checkWill refuses a CONNECT whose will the server cannot honour
// ([MQTT5-3.2.2-12], [MQTT5-3.2.2-13]).
func (c *client) checkWill(p *packets.Connect) error {
	if p.WillFlag && p.WillQoS > c.b.opts.Features.maxQoS() {
		c.refuseConnect(packets.QoSNotSupported, "will QoS above the server's maximum")
		return errors.New("will QoS not supported")
	}
	if p.WillFlag && p.WillRetain && c.b.opts.Features.NoRetain {
		c.refuseConnect(packets.RetainNotSupported, "retained messages are not available")
		return errors.New("will retain not supported")
	}
	return nil
}

// storeWill copies an accepted CONNECT's will out of the read buffer.
func (c *client) storeWill(p *packets.Connect) {
	if !p.WillFlag {
		return
	}
	c.will = &Message{
		Topic:   strings.Clone(p.WillTopic),
		Payload: append([]byte{}, p.WillPayload...),
		QoS:     p.WillQoS,
		Retain:  p.WillRetain,
		From:    c.info.ClientID,
	}
	if c.version == packets.V5 {
		c.willDelay = p.WillProps.WillDelay
		c.will.Props = p.WillProps.Clone()
		c.will.Props.Clear(packets.PropWillDelay)
	}
}

// refuseTooLarge turns away a CONNECT larger than the pre-authentication
// bound. An MQTT 5 client hears 0x95 (packet too large) when its CONNECT's
// first bytes say it is one; 3.1.1 has no code for it and is only closed.
func (c *client) refuseTooLarge(size int) {
	reason := fmt.Sprintf("CONNECT of %d bytes exceeds limits.max-connect-size (%d)", size, c.b.limits.MaxConnectSize)
	if c.r.connectLevel() == packets.V5 {
		c.version = packets.V5
		c.refuseConnect(packets.PacketTooLarge, reason)
		return
	}
	c.recordRefusal(packets.PacketTooLarge, reason, "")
}

// readConnectProps takes what an MQTT 5 CONNECT says about the client.
func (c *client) readConnectProps(pp *packets.Properties) {
	// [MQTT5-3.1.2-29] absent means 1: reason strings are welcome.
	c.problemInfo = !pp.Has(packets.PropRequestProblemInfo) || pp.RequestProblemInfo == 1
	c.maxOut = int(pp.MaximumPacketSize) // 0: no limit
	c.aliasMax = min(pp.TopicAliasMaximum, c.b.limits.TopicAliasMaximum)
	c.recvMax = 65535
	if pp.Has(packets.PropReceiveMaximum) {
		c.recvMax = int(pp.ReceiveMaximum)
	}
	if len(pp.User) > 0 {
		c.info.UserProperties = pp.Clone().User
	}
	c.authMethod = strings.Clone(pp.AuthMethod)
	c.info.AuthMethod = c.authMethod
}

// sessionExpiry is how long the session outlives the connection, in
// seconds: 3.1.1 clean session 0, else for ever; MQTT 5 says it in
// CONNECT. Limits.SessionExpiry caps both (and a v5 client is told).
func (c *client) sessionExpiry(p *packets.Connect, ack *packets.Properties) uint32 {
	var expiry uint32
	switch {
	case c.version == packets.V5:
		expiry = p.Props.SessionExpiry
	case !p.CleanStart:
		expiry = sessionNeverExpires
	}
	if capped := capExpiry(expiry, c.b.limits.SessionExpiry); capped != expiry {
		expiry = capped
		if c.version == packets.V5 {
			ack.SessionExpiry = capped // the server's value wins (5.0 §3.2.2.3.2)
		}
	}
	return expiry
}

// assignClientID makes an id for a client that connected without one.
func assignClientID() string {
	var r [12]byte
	rand.Read(r[:])
	return "mqttd-" + hex.EncodeToString(r[:])
}
