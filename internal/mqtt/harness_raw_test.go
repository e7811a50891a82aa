package mqtt

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// rawClient speaks MQTT byte by byte over a real socket, for exact-bytes and
// malformed-input tests. v is the protocol version it encodes and decodes
// with: 3.1.1 from dialRaw, 5.0 from dialRawV5.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	v    packets.Version
}

// dialRaw opens a raw MQTT 3.1.1 connection.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), v: packets.V311}
}

// dialRawV5 opens a raw MQTT 5 connection.
func dialRawV5(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.v = packets.V5
	return c
}

// mustConnectV5 connects a raw MQTT 5 client with the given session expiry
// (0 = absent) and fails unless the CONNACK is a success.
func mustConnectV5(t *testing.T, addr, id string, clean bool, expiry uint32) (*rawClient, *packets.Connack) {
	t.Helper()
	c := dialRawV5(t, addr)
	p := &packets.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	p.Props.SessionExpiry = expiry
	ack := c.connectWith(p)
	if ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, id)
	}
	return c, ack
}

// connectAs connects a raw client of version v with a user name (any
// password) and fails unless it is accepted.
func connectAs(t *testing.T, addr string, v packets.Version, p *packets.Connect, user string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.v = v
	p.ProtocolVersion = v
	if p.KeepAlive == 0 {
		p.KeepAlive = 60
	}
	if user != "" {
		p.UsernameFlag, p.Username = true, user
		p.PasswordFlag, p.Password = true, []byte("pw")
	}
	if ack := c.connectWith(p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, p.ClientID)
	}
	return c
}

// write sends raw bytes.
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send encodes and sends a packet.
func (c *rawClient) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	c.write(b)
}

// read returns the next packet, failing the test after timeout.
func (c *rawClient) read(timeout time.Duration) packets.Packet {
	c.t.Helper()
	p, err := c.tryRead(timeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func (c *rawClient) tryRead(timeout time.Duration) (packets.Packet, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	return packets.ReadPacket(c.r, c.v, 1<<24)
}

// expect reads the next packet and fails unless it has type typ and packet
// id pid.
func (c *rawClient) expect(typ packets.Type, pid uint16) packets.Packet {
	c.t.Helper()
	p := c.read(2 * time.Second)
	if p.Type() != typ {
		c.t.Fatalf("got %v %+v, want %v id %d", p.Type(), p, typ, pid)
	}
	if id := packetID(p); id != pid {
		c.t.Fatalf("%v id %d, want %d", typ, id, pid)
	}
	return p
}

// packetID returns the packet identifier of an acknowledgement or PUBLISH.
func packetID(p packets.Packet) uint16 {
	switch p := p.(type) {
	case *packets.Puback:
		return p.PacketID
	case *packets.Pubrec:
		return p.PacketID
	case *packets.Pubrel:
		return p.PacketID
	case *packets.Pubcomp:
		return p.PacketID
	case *packets.Suback:
		return p.PacketID
	case *packets.Unsuback:
		return p.PacketID
	case *packets.Publish:
		return p.PacketID
	}
	return 0
}

// expectClosed asserts the broker closes the connection within timeout
// without sending anything more.
func (c *rawClient) expectClosed(timeout time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var one [1]byte
	n, err := c.r.Read(one[:])
	if err == nil {
		c.t.Fatalf("expected the connection to close, got byte %#x", one[:n])
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", timeout)
	}
}

// connect sends CONNECT with the given id, clean flag and keep alive and
// returns the CONNACK.
func (c *rawClient) connect(id string, clean bool, keepAlive uint16) *packets.Connack {
	c.t.Helper()
	return c.connectWith(&packets.Connect{ClientID: id, CleanStart: clean, KeepAlive: keepAlive})
}

// connectWith sends a full CONNECT (protocol name and version default to
// "MQTT" and the client's version) and returns the CONNACK.
func (c *rawClient) connectWith(p *packets.Connect) *packets.Connack {
	c.t.Helper()
	if p.ProtocolName == "" {
		p.ProtocolName = "MQTT"
	}
	if p.ProtocolVersion == 0 {
		p.ProtocolVersion = c.v
	}
	c.send(p)
	pk := c.read(2 * time.Second)
	ack, ok := pk.(*packets.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK, got %v", pk.Type())
	}
	return ack
}

// mustConnect connects and fails unless accepted.
func (c *rawClient) mustConnect(id string, clean bool) *packets.Connack {
	c.t.Helper()
	ack := c.connect(id, clean, 0)
	if ack.ReasonCode != 0 {
		c.t.Fatalf("CONNACK code %#x", byte(ack.ReasonCode))
	}
	return ack
}

// expectConnackClose reads a CONNACK with the given reason code and then
// expects the connection to close.
func (c *rawClient) expectConnackClose(code packets.ReasonCode) *packets.Connack {
	c.t.Helper()
	p := c.read(3 * time.Second)
	ack, ok := p.(*packets.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK, got %v %+v", p.Type(), p)
	}
	if ack.ReasonCode != code {
		c.t.Fatalf("CONNACK %v (%#x), want %v (%#x)", ack.ReasonCode, byte(ack.ReasonCode), code, byte(code))
	}
	c.expectClosed(2 * time.Second)
	return ack
}

// disconnect sends DISCONNECT and waits for the broker to close.
func (c *rawClient) disconnect() {
	c.t.Helper()
	c.send(&packets.Disconnect{})
	c.expectClosed(2 * time.Second)
}

// expectDisconnect reads the next packet, fails unless it is a DISCONNECT
// with the given reason code (MQTT 5), and then expects the connection to
// close.
func (c *rawClient) expectDisconnect(code packets.ReasonCode) *packets.Disconnect {
	c.t.Helper()
	p, err := c.tryRead(3 * time.Second)
	if err != nil {
		c.t.Fatalf("expected DISCONNECT %v, read failed: %v", code, err)
	}
	d, ok := p.(*packets.Disconnect)
	if !ok {
		c.t.Fatalf("expected DISCONNECT %v, got %v %+v", code, p.Type(), p)
	}
	if d.ReasonCode != code {
		c.t.Fatalf("DISCONNECT reason %v (%#x), want %v (%#x)", d.ReasonCode, byte(d.ReasonCode), code, byte(code))
	}
	c.expectClosed(2 * time.Second)
	return d
}

// subscribe subscribes to one filter and returns the SUBACK codes,
// skipping any other packet that arrives first.
func (c *rawClient) subscribe(pid uint16, filter string, qos byte) []packets.ReasonCode {
	c.t.Helper()
	c.send(&packets.Subscribe{PacketID: pid, Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}})
	for {
		p := c.read(2 * time.Second)
		if ack, ok := p.(*packets.Suback); ok {
			if ack.PacketID != pid {
				c.t.Fatalf("SUBACK id %d, want %d", ack.PacketID, pid)
			}
			return ack.ReasonCodes
		}
	}
}

// subscribeOpts sends one SUBSCRIBE with several filters and their options
// (and, when subID is not 0, an MQTT 5 subscription identifier) and returns
// the SUBACK codes; the SUBACK must be the next packet.
func (c *rawClient) subscribeOpts(pid uint16, subID uint32, subs ...packets.Subscription) []packets.ReasonCode {
	c.t.Helper()
	p := &packets.Subscribe{PacketID: pid, Subscriptions: subs}
	if subID != 0 {
		p.Props.SubscriptionIDs = []uint32{subID}
	}
	c.send(p)
	return c.expect(packets.SUBACK, pid).(*packets.Suback).ReasonCodes
}

// publish1 publishes a QoS 1 message and waits for its PUBACK.
func (c *rawClient) publish1(pid uint16, topic, payload string, retain bool) *packets.Puback {
	c.t.Helper()
	c.send(&packets.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, PacketID: pid, Retain: retain})
	return c.expect(packets.PUBACK, pid).(*packets.Puback)
}

// expectPublish reads the next packet and fails unless it is a PUBLISH.
func (c *rawClient) expectPublish(timeout time.Duration) *packets.Publish {
	c.t.Helper()
	p := c.read(timeout)
	pub, ok := p.(*packets.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %v", p.Type())
	}
	return pub
}

// ack acknowledges a QoS 1 PUBLISH the client received.
func (c *rawClient) ack(p *packets.Publish) {
	c.t.Helper()
	if p.QoS == 1 {
		c.send(&packets.Puback{PacketID: p.PacketID})
	}
}

// nextPayload reads the next PUBLISH (acknowledging QoS 1) and returns its
// payload, failing after timeout.
func (c *rawClient) nextPayload(timeout time.Duration) string {
	c.t.Helper()
	p := c.expectPublish(timeout)
	c.ack(p)
	return string(p.Payload)
}

// expectNothing asserts no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	if p, err := c.tryRead(d); err == nil {
		c.t.Fatalf("expected nothing, got %v %+v", p.Type(), p)
	}
}

// connectBytes hand-encodes an MQTT CONNECT with protocol level level,
// clean start, keep alive 60, the raw property block props (length prefix
// added here; nil for a pre-5 level, which has none) and client id id. It
// exists to send what the codec refuses to encode: duplicate or misplaced
// properties, unknown levels.
func connectBytes(level byte, props []byte, id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', level, 0x02, 0, 60}
	if props != nil {
		body = packets.AppendVarInt(body, len(props))
		body = append(body, props...)
	}
	body = append(body, byte(len(id)>>8), byte(len(id)))
	body = append(body, id...)
	out := packets.AppendFixedHeader(nil, packets.FixedHeader{Type: packets.CONNECT, Remaining: len(body)})
	return append(out, body...)
}

// publishBytesV5 hand-encodes an MQTT 5 QoS 1 PUBLISH with the raw property
// block props, for properties the codec would not encode.
func publishBytesV5(topic string, pid uint16, props []byte, payload string) []byte {
	body := []byte{byte(len(topic) >> 8), byte(len(topic))}
	body = append(body, topic...)
	body = append(body, byte(pid>>8), byte(pid))
	body = packets.AppendVarInt(body, len(props))
	body = append(body, props...)
	body = append(body, payload...)
	out := packets.AppendFixedHeader(nil, packets.FixedHeader{Type: packets.PUBLISH, Flags: 0x02, Remaining: len(body)})
	return append(out, body...)
}
