// Authenticating a CONNECT (including the MQTT 5 AUTH exchange) and refusing one with a CONNACK.

package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// authenticate runs the Authenticator, including an MQTT 5 enhanced
// authentication exchange (AUTH packets) when the CONNECT names a method.
// It returns the final authentication data for CONNACK.
func (c *client) authenticate(p *packets.Connect) ([]byte, error) {
	b := c.b
	if c.authMethod != "" {
		return c.connectExchange(p)
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
