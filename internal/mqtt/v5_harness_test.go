package mqtt

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Helpers for the MQTT 5.0 test files (v5_*_test.go). They build on
// harness_test.go and extharness_test.go without changing them.

// v5Dial opens a raw MQTT 5 connection.
func v5Dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.v = packets.V5
	return c
}

// v5Connect sends an MQTT 5 CONNECT and returns the CONNACK.
func v5Connect(c *rawClient, p *packets.Connect) *packets.Connack {
	c.t.Helper()
	p.ProtocolVersion = packets.V5
	return extConnect(c, p)
}

// v5MustConnect connects a raw MQTT 5 client with the given session expiry
// (0 = absent) and fails unless the CONNACK is a success.
func v5MustConnect(t *testing.T, addr, id string, clean bool, expiry uint32) (*rawClient, *packets.Connack) {
	t.Helper()
	c := v5Dial(t, addr)
	p := &packets.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	p.Props.SessionExpiry = expiry
	ack := v5Connect(c, p)
	if ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, id)
	}
	return c, ack
}

// v5ExpectDisconnect reads the next packet, fails unless it is a DISCONNECT
// with the given reason code, and then expects the connection to close.
func v5ExpectDisconnect(c *rawClient, code packets.ReasonCode) *packets.Disconnect {
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

// v5ExpectConnackClose reads a CONNACK with the given reason code and then
// expects the connection to close.
func v5ExpectConnackClose(c *rawClient, code packets.ReasonCode) *packets.Connack {
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

// v5Sub subscribes a raw client with options (and an optional
// subscription identifier) and returns the SUBACK codes.
func v5Sub(c *rawClient, pid uint16, subID uint32, subs ...packets.Subscription) []packets.ReasonCode {
	c.t.Helper()
	p := &packets.Subscribe{PacketID: pid, Subscriptions: subs}
	if subID != 0 {
		p.Props.SubscriptionIDs = []uint32{subID}
	}
	c.send(p)
	return extExpect(c, packets.SUBACK, pid).(*packets.Suback).ReasonCodes
}

// v5Ack acknowledges a QoS 1 PUBLISH a raw client received.
func v5Ack(c *rawClient, p *packets.Publish) {
	c.t.Helper()
	if p.QoS == 1 {
		c.send(&packets.Puback{PacketID: p.PacketID})
	}
}

// v5ConnectBytes hand-encodes an MQTT CONNECT with protocol level level,
// clean start, keep alive 60, the raw property block props (length prefix
// added here; nil for a pre-5 level, which has none) and client id id. It
// exists to send what the codec refuses to encode: duplicate or misplaced
// properties, unknown levels.
func v5ConnectBytes(level byte, props []byte, id string) []byte {
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

// v5PublishBytes hand-encodes a QoS 1 PUBLISH with the raw property block
// props, for properties the codec would not encode.
func v5PublishBytes(topic string, pid uint16, props []byte, payload string) []byte {
	body := []byte{byte(len(topic) >> 8), byte(len(topic))}
	body = append(body, topic...)
	body = append(body, byte(pid>>8), byte(pid))
	body = packets.AppendVarInt(body, len(props))
	body = append(body, props...)
	body = append(body, payload...)
	out := packets.AppendFixedHeader(nil, packets.FixedHeader{Type: packets.PUBLISH, Flags: 0x02, Remaining: len(body)})
	return append(out, body...)
}

// v5Client is a paho.golang (MQTT 5) client whose received PUBLISH packets
// arrive on msgs, and whose server DISCONNECT (if any) arrives on disc.
type v5Client struct {
	*pahov5.Client
	t    *testing.T
	ack  *pahov5.Connack
	msgs chan *pahov5.Publish
	disc chan *pahov5.Disconnect
	once sync.Once
}

// v5Paho connects a paho.golang client to addr with cp (ClientID and
// KeepAlive are filled in when empty); mod may adjust the client config.
// It fails the test unless the CONNACK is a success.
func v5Paho(t *testing.T, addr string, cp *pahov5.Connect, mod func(*pahov5.ClientConfig)) *v5Client {
	t.Helper()
	c, err := v5PahoTry(t, addr, cp, mod)
	if err != nil {
		t.Fatalf("paho v5 connect %q: %v", cp.ClientID, err)
	}
	return c
}

// v5PahoTry is v5Paho returning the connect error (and CONNACK in c.ack,
// when there was one) instead of failing.
func v5PahoTry(t *testing.T, addr string, cp *pahov5.Connect, mod func(*pahov5.ClientConfig)) (*v5Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	vc := &v5Client{t: t, msgs: make(chan *pahov5.Publish, 4096), disc: make(chan *pahov5.Disconnect, 1)}
	cfg := pahov5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			vc.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case vc.disc <- d:
			default:
			}
		},
		PacketTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	vc.Client = pahov5.NewClient(cfg)
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := vc.Connect(ctx, cp)
	vc.ack = ack
	if err != nil {
		conn.Close()
		return vc, err
	}
	t.Cleanup(func() { vc.stop() })
	return vc, nil
}

// stop disconnects normally (once).
func (c *v5Client) stop() {
	c.once.Do(func() {
		_ = c.Disconnect(&pahov5.Disconnect{ReasonCode: 0})
	})
}

// sub subscribes with the given options and fails unless every filter is
// granted.
func (c *v5Client) sub(subID int, opts ...pahov5.SubscribeOptions) *pahov5.Suback {
	c.t.Helper()
	s := &pahov5.Subscribe{Subscriptions: opts}
	if subID != 0 {
		s.Properties = &pahov5.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Subscribe(ctx, s)
	if err != nil {
		c.t.Fatalf("subscribe %+v: %v", opts, err)
	}
	return ack
}

// pub publishes and fails on an error (a reason code >= 0x80 is an error
// for QoS 1); it returns the acknowledgement.
func (c *v5Client) pub(p *pahov5.Publish) *pahov5.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// recv waits for the next message.
func (c *v5Client) recv(timeout time.Duration) *pahov5.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		c.t.Fatalf("%s: no message within %v", c.ClientID(), timeout)
		return nil
	}
}

// none asserts no message arrives within d.
func (c *v5Client) none(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("%s: unexpected message %s %q", c.ClientID(), m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// v5Ptr returns a pointer to v (paho.golang's optional properties).
func v5Ptr[T any](v T) *T { return &v }

// v5SameIDs reports whether two subscription identifier lists hold the same
// identifiers, in any order.
func v5SameIDs(got, want []uint32) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
