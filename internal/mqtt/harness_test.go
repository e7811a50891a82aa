package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// testBroker is a broker on a loopback port, closed when the test ends.
type testBroker struct {
	*Broker
	t    *testing.T
	addr string
}

// startBroker starts a broker with one TCP listener on 127.0.0.1:0. mod may
// adjust the options before start.
func startBroker(t *testing.T, mod func(*Options)) *testBroker {
	t.Helper()
	opts := Options{
		Name:        "test",
		Listeners:   []ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
	}
	if mod != nil {
		mod(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tb := &testBroker{Broker: b, t: t}
	if a := b.Addr(opts.Listeners[0].Name); a != nil {
		tb.addr = a.String()
	}
	t.Cleanup(func() {
		if b.closing.Load() {
			return // the test closed it itself
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tb
}

// rawClient speaks MQTT byte by byte over a real socket, for exact-bytes and
// malformed-input tests.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	v    packets.Version
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), v: packets.V311}
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

// connect sends CONNECT with the given id and clean flag and returns CONNACK.
func (c *rawClient) connect(id string, clean bool, keepAlive uint16) *packets.Connack {
	c.t.Helper()
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: c.v, ClientID: id, CleanStart: clean, KeepAlive: keepAlive})
	p := c.read(2 * time.Second)
	ack, ok := p.(*packets.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK, got %v", p.Type())
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

// subscribe subscribes and returns the SUBACK codes.
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

// expectPublish reads packets until a PUBLISH arrives.
func (c *rawClient) expectPublish(timeout time.Duration) *packets.Publish {
	c.t.Helper()
	p := c.read(timeout)
	pub, ok := p.(*packets.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %v", p.Type())
	}
	return pub
}

// expectNothing asserts no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	if p, err := c.tryRead(d); err == nil {
		c.t.Fatalf("expected nothing, got %v %+v", p.Type(), p)
	}
}

// pahoClient connects a paho.mqtt.golang client (MQTT 3.1.1) to addr.
func pahoClient(t *testing.T, addr, id string, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, _ := extPaho(t, "tcp://"+addr, id, mod)
	return c
}

// waitFor polls cond until it holds or the deadline passes. It measures no
// performance: it only bounds how long an asynchronous effect may take.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tb *testBroker) String() string { return fmt.Sprintf("broker@%s", tb.addr) }
