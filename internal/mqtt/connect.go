package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
func (c *client) handshake() error {
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
	var p packets.Connect
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
	v5 := c.version == packets.V5
	if b.evMask().Has(EventPacketReceived) {
		b.emit(&Event{Type: EventPacketReceived, Packet: &p})
	}

	c.info.ClientID = strings.Clone(p.ClientID)
	c.info.Username = strings.Clone(p.Username)
	c.info.ProtocolVersion = byte(p.ProtocolVersion)
	c.info.CleanStart = p.CleanStart
	c.info.KeepAlive = p.KeepAlive
	var ack packets.Properties // CONNACK properties (MQTT 5)
	if v5 {
		c.readConnectProps(&p.Props)
	}
	if c.info.ClientID == "" {
		// 3.1.1: [MQTT-3.1.3-8] an empty id needs a clean session, and
		// [MQTT-3.1.3-6] then the server assigns one. MQTT 5 assigns one
		// either way and says which ([MQTT5-3.2.2-16]).
		if !v5 && !p.CleanStart {
			c.refuseConnect(packets.ClientIDNotValid, "")
			return errors.New("empty client id without clean session")
		}
		c.info.ClientID = assignClientID()
		c.info.AssignedID = true
		ack.AssignedClientID = c.info.ClientID
	}
	keepAlive := p.KeepAlive
	if max := b.limits.MaxKeepAlive; max > 0 && (keepAlive == 0 || keepAlive > max) {
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

	// [MQTT5-3.2.2-12], [MQTT5-3.2.2-13] a will the server cannot honour.
	if p.WillFlag && p.WillQoS > b.opts.Features.maxQoS() {
		c.refuseConnect(packets.QoSNotSupported, "will QoS above the server's maximum")
		return errors.New("will QoS not supported")
	}
	if p.WillFlag && p.WillRetain && b.opts.Features.NoRetain {
		c.refuseConnect(packets.RetainNotSupported, "retained messages are not available")
		return errors.New("will retain not supported")
	}
	authData, err := c.authenticate(&p)
	if err != nil {
		return err
	}
	if authData != nil || c.authMethod != "" {
		ack.AuthMethod = c.authMethod
		ack.AuthData = authData
	}
	if p.WillFlag {
		c.will = &Message{
			Topic:   strings.Clone(p.WillTopic),
			Payload: append([]byte{}, p.WillPayload...),
			QoS:     p.WillQoS,
			Retain:  p.WillRetain,
			From:    c.info.ClientID,
		}
		if v5 {
			c.willDelay = p.WillProps.WillDelay
			c.will.Props = p.WillProps.Clone()
			c.will.Props.Clear(packets.PropWillDelay)
		}
	}
	expiry := c.sessionExpiry(&p, &ack)
	c.attach(p.CleanStart, expiry, &ack)
	c.r.max, c.r.wary = b.limits.MaxPacketSize, false // authenticated
	b.log.Info("client connected", "client_id", c.info.ClientID, "username", c.info.Username,
		"remote", c.info.RemoteAddr, "listener", c.info.Listener, "protocol", int(c.info.ProtocolVersion))
	b.emit(&Event{Type: EventClientConnected, Client: &c.info})
	return nil
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

// authenticate runs the Authenticator, including an MQTT 5 enhanced
// authentication exchange (AUTH packets) when the CONNECT names a method.
// It returns the final authentication data for CONNACK.
func (c *client) authenticate(p *packets.Connect) ([]byte, error) {
	b := c.b
	if c.authMethod != "" {
		ex, ok := b.hooks.Auth.(AuthExchanger)
		if !ok {
			// [MQTT5-4.12.0-1] a method the server does not support.
			c.refuseConnect(packets.BadAuthMethod, "authentication method not supported")
			return nil, errAuthMissing
		}
		data := p.Props.AuthData
		for {
			st := ex.AuthStep(c.ctx, &c.info, c.authMethod, data, false)
			if c.ctx.Err() != nil {
				return nil, c.abandonedAuth(context.Cause(c.ctx), st.Result.Plugin)
			}
			if !st.Continue {
				return st.Data, c.checkAuth(st.Result)
			}
			next, err := c.authRound(st.Data)
			if err != nil {
				c.refuseConnect(packets.ProtocolError, err.Error())
				return nil, err
			}
			data = next
		}
	}
	if b.hooks.Auth == nil {
		return nil, nil
	}
	var res AuthResult
	if gone := c.decideWatched(func(ctx context.Context) { res = b.hooks.Auth.Authenticate(ctx, &c.info, p.Password) }); gone != nil {
		return nil, c.abandonedAuth(gone, res.Plugin)
	}
	return nil, c.checkAuth(res)
}

// abandonedAuth refuses a CONNECT whose decision ended because the client
// went away (or the broker began closing) before it was made: whatever the
// Authenticator answered then (a plugin chain may answer a cancelled call
// with its on-error policy), nothing the client pipelined may run.
func (c *client) abandonedAuth(why error, plugin string) error {
	c.b.stats.authRejected.Add(1)
	code, reason := packets.NotAuthorized, "the client left before its CONNECT was decided"
	if !errors.Is(why, errClientGone) {
		code, reason = packets.ServerUnavailable, "the server is shutting down"
	}
	c.refuseConnectBy(code, reason, plugin)
	return fmt.Errorf("CONNECT not decided: %w", why)
}

// authRound sends AUTH "continue authentication" during CONNECT and reads
// the client's answer, which must be an AUTH with the same method.
func (c *client) authRound(data []byte) ([]byte, error) {
	out := packets.Auth{ReasonCode: packets.ContinueAuthentication}
	out.Props.AuthMethod = c.authMethod
	out.Props.AuthData = data
	buf, _ := out.Append(nil, packets.V5)
	c.conn.SetWriteDeadline(time.Now().Add(c.b.limits.ConnectTimeout))
	if _, err := c.conn.Write(buf); err != nil {
		return nil, err
	}
	fh, body, err := c.r.next()
	if err != nil {
		return nil, err
	}
	c.pktsIn++
	var in packets.Auth
	if fh.Type != packets.AUTH || in.Decode(fh, body, packets.V5) != nil ||
		in.ReasonCode != packets.ContinueAuthentication || in.Props.AuthMethod != c.authMethod {
		return nil, errAuthProto
	}
	return in.Props.AuthData, nil
}

// checkAuth refuses the CONNECT unless res allows it.
func (c *client) checkAuth(res AuthResult) error {
	if res.Allow {
		return nil
	}
	c.b.stats.authRejected.Add(1)
	code := packets.DenyCode(packets.CONNACK, res.ReasonCode)
	if c.version != packets.V5 && packets.DenyConnackV3(code) == packets.ConnRefusedNotAuthorized {
		// A refused 3.1.1 client hears only 0x04 or 0x05; the refusal is
		// recorded in MQTT 5 terms, and refuseConnectBy sends 0x87 as 0x05.
		code = packets.NotAuthorized
	}
	c.refuseConnectBy(code, res.Reason, res.Plugin)
	return fmt.Errorf("not authorized (%v): %s", code, res.Reason)
}

// refuseConnect answers a CONNECT the broker's own rules turn away.
func (c *client) refuseConnect(code packets.ReasonCode, reason string) {
	c.refuseConnectBy(code, reason, "")
}

// refuseConnectBy answers a CONNECT with a failure code before the
// connection is closed ([MQTT-3.2.2-4], [MQTT5-3.2.2-6]: session present 0),
// and records the refusal for the operator. code is an MQTT 5 reason code;
// 3.1.1 clients get its 3.1.1 equivalent. plugin names who decided ("" for
// the broker's own rules).
func (c *client) refuseConnectBy(code packets.ReasonCode, reason, plugin string) {
	c.recordRefusal(code, reason, plugin)
	ack := packets.Connack{ReasonCode: code}
	v := c.version
	if v == packets.V5 {
		ack.Props.ReasonString = reason
	} else {
		v = packets.V311
		ack.ReasonCode = packets.ConnackCodeV3(code)
	}
	buf, _ := ack.Append(nil, v)
	if c.maxOut > 0 && len(buf) > c.maxOut && stripProblemInfo(&ack) {
		buf, _ = ack.Append(nil, v)
	}
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.Write(buf)
	c.b.stats.bytesOut.Add(int64(len(buf)))
	c.b.stats.pktsOut.Add(1)
	c.b.emitPacketSent(&c.info, buf, v)
}

// recordRefusal logs a refused CONNECT and keeps it in the refusal ring.
func (c *client) recordRefusal(code packets.ReasonCode, reason, plugin string) {
	c.refused = true
	c.b.refused(Refusal{ClientID: c.info.ClientID, Username: c.info.Username, RemoteAddr: c.info.RemoteAddr,
		Listener: c.info.Listener, Protocol: byte(c.version), ReasonCode: byte(code), Reason: reason, Plugin: plugin})
}

// refuseOverCapacity turns away a connection over MaxConnections: it reads the CONNECT
// (briefly) so the answer can be a proper CONNACK: "server unavailable"
// (3.1.1), "server busy" (MQTT 5).
func (b *Broker) refuseOverCapacity(conn net.Conn, l *listener) {
	b.stats.connsRefused.Add(1)
	f := Refusal{RemoteAddr: conn.RemoteAddr().String(), Listener: l.name, ReasonCode: byte(packets.ServerBusy),
		Reason: fmt.Sprintf("max-connections (%d) reached", b.limits.MaxConnections)}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := packetReader{conn: conn, max: 4096}
	if fh, body, err := r.next(); err == nil && fh.Type == packets.CONNECT {
		var p packets.Connect
		ack := packets.Connack{ReasonCode: packets.ConnRefusedServerUnavailable}
		v := packets.V311
		if p.Decode(fh, body, 0); p.ProtocolVersion == packets.V5 {
			ack.ReasonCode, v = packets.ServerBusy, packets.V5
		}
		f.ClientID, f.Username, f.Protocol = strings.Clone(p.ClientID), strings.Clone(p.Username), byte(p.ProtocolVersion)
		buf, _ := ack.Append(nil, v)
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(buf)
	}
	conn.Close()
	b.refused(f)
}

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
	if found {
		old.mu.Lock()
		prev := old.client
		old.client = nil
		old.mu.Unlock()
		if prev != nil {
			b.stats.takeovers.Add(1)
			prev.closeTakenOver()
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
	if found && !cleanStart && !old.clean && old.owner == owner {
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
	connack := &packets.Connack{SessionPresent: present, ReasonCode: packets.Success}
	if c.version == packets.V5 {
		connack.Props = *ack
		b.serverCaps(&connack.Props)
	}
	c.appendControl(connack)
	c.resendInflight(s)
	b.pumpLocked(s)
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
		return !c.appendDelivery(&e.d, e.pid, true)
	})
}

func assignClientID() string {
	var r [12]byte
	rand.Read(r[:])
	return "mqttd-" + hex.EncodeToString(r[:])
}
