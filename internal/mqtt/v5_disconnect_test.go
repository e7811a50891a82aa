package mqtt

import (
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// When the broker ends an MQTT 5 connection it says why in a DISCONNECT
// ([MQTT5-4.13.1-1], 5.0 §3.14.2.1); a 3.1.1 connection is just closed, with no
// bytes (3.1.1 has no server DISCONNECT). These tests cover each cause.

// Session taken over: the old connection gets DISCONNECT 0x8E; the new one
// carries on. paho.golang reports the code to OnServerDisconnect.
func TestV5DisconnectSessionTakenOver(t *testing.T) {
	tb := startBroker(t, nil)
	old, _ := mustConnectV5(t, tb.addr, "v5-takeover", true, 0)
	cur, _ := mustConnectV5(t, tb.addr, "v5-takeover", true, 0)
	old.expectDisconnect(packets.SessionTakenOver)
	cur.send(&packets.Pingreq{})
	if p := cur.read(2 * time.Second); p.Type() != packets.PINGRESP {
		t.Fatalf("new connection: %v", p.Type())
	}

	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-takeover-paho", CleanStart: true}, nil)
	mustConnectV5(t, tb.addr, "v5-takeover-paho", true, 0)
	select {
	case d := <-pc.disc:
		if d.ReasonCode != 0x8E {
			t.Fatalf("paho: server DISCONNECT %#x, want 0x8E", d.ReasonCode)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("paho: no server DISCONNECT on takeover")
	}

	v3old := dialRaw(t, tb.addr)
	v3old.mustConnect("v3-takeover", true)
	dialRaw(t, tb.addr).mustConnect("v3-takeover", true)
	v3old.expectClosed(2 * time.Second) // fails on any byte, DISCONNECT included
}

// Keep-alive timeout: DISCONNECT 0x8D after 1.5 × the keep alive in force,
// which is the Server Keep Alive the CONNACK announced when Limits caps the
// client's ([MQTT5-3.1.2-22], [MQTT5-3.2.2-21]).
func TestV5DisconnectKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(o *Options) { o.Limits.MaxKeepAlive = 1 })
	c := dialRawV5(t, tb.addr)
	ack := c.connectWith(&packets.Connect{ClientID: "v5-ka", CleanStart: true, KeepAlive: 600})
	if ack.ReasonCode != packets.Success || ack.Props.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK %v Server Keep Alive %d, want 1", ack.ReasonCode, ack.Props.ServerKeepAlive)
	}
	v3 := dialRaw(t, tb.addr)
	if a := v3.connect("v3-ka", true, 1); a.ReasonCode != 0 {
		t.Fatalf("3.1.1 CONNACK %v", a.ReasonCode)
	}
	c.expectDisconnect(packets.KeepAliveTimeout)
	v3.expectClosed(3 * time.Second)
	if n := tb.Stats().KeepAliveExpired; n != 2 {
		t.Errorf("KeepAliveExpired %d, want 2", n)
	}
}

// Server shutting down: Broker.Close sends DISCONNECT 0x8B to every v5
// client (raw and paho.golang) and closes 3.1.1 clients silently.
func TestV5DisconnectServerShuttingDown(t *testing.T) {
	tb := startBroker(t, nil)
	c, _ := mustConnectV5(t, tb.addr, "v5-shutdown", true, 0)
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shutdown-paho", CleanStart: true}, nil)
	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("v3-shutdown", true)

	done := make(chan error, 1)
	go func() { done <- closeBroker(t, tb.Broker, 5*time.Second) }()
	c.expectDisconnect(packets.ServerShuttingDown)
	v3.expectClosed(2 * time.Second)
	select {
	case d := <-pc.disc:
		if d.ReasonCode != 0x8B {
			t.Errorf("paho: DISCONNECT %#x, want 0x8B", d.ReasonCode)
		}
	case <-time.After(3 * time.Second):
		t.Error("paho: no DISCONNECT on shutdown")
	}
	if err := <-done; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Packet too large: a packet over Limits.MaxPacketSize (announced as the
// CONNACK's Maximum Packet Size) gets DISCONNECT 0x95 ([MQTT5-3.2.2-15]:
// the client must not send one; the server treats it as 0x95).
func TestV5DisconnectPacketTooLarge(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxPacketSize = 256 })
	c, ack := mustConnectV5(t, tb.addr, "v5-big", true, 0)
	if ack.Props.MaximumPacketSize != 256 {
		t.Fatalf("Maximum Packet Size %d, want 256", ack.Props.MaximumPacketSize)
	}
	// Exactly at the limit is fine.
	ok := &packets.Publish{Topic: "v5/big", QoS: 1, PacketID: 1}
	ok.Payload = make([]byte, 200)
	b, _ := ok.Append(nil, packets.V5)
	ok.Payload = make([]byte, 200+256-len(b)) // the remaining length's size stays 2 bytes
	if b, _ = ok.Append(nil, packets.V5); len(b) != 256 {
		t.Fatalf("test packet is %d bytes", len(b))
	}
	c.send(ok)
	c.expect(packets.PUBACK, 1)
	c.send(&packets.Publish{Topic: "v5/big", QoS: 1, PacketID: 2, Payload: make([]byte, 400)})
	c.expectDisconnect(packets.PacketTooLarge)

	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("v3-big", true)
	v3.send(&packets.Publish{Topic: "v3/big", Payload: make([]byte, 400)})
	v3.expectClosed(2 * time.Second)
}

// Protocol error (0x82): a second CONNECT ([MQTT5-3.1.0-2]), a PUBLISH from a
// client carrying a Subscription Identifier ([MQTT5-3.3.4-6]), a packet
// only a server sends.
func TestV5DisconnectProtocolError(t *testing.T) {
	tb := startBroker(t, nil)
	for name, send := range map[string]func(c *rawClient){
		"second CONNECT": func(c *rawClient) {
			c.send(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "again", CleanStart: true})
		},
		"PUBLISH with a Subscription Identifier": func(c *rawClient) {
			p := &packets.Publish{Topic: "v5/x", Payload: []byte("x")}
			p.Props.SubscriptionIDs = []uint32{3}
			c.send(p)
		},
		"CONNACK from a client": func(c *rawClient) { c.send(&packets.Connack{}) },
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := mustConnectV5(t, tb.addr, "v5-proto", true, 0)
			send(c)
			c.expectDisconnect(packets.ProtocolError)
		})
	}
	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("v3-proto", true)
	v3.send(&packets.Connect{ProtocolVersion: packets.V311, ClientID: "again", CleanStart: true})
	v3.expectClosed(2 * time.Second)
}

// Malformed packet (0x81): a PUBLISH with a property PUBLISH may not carry,
// or an unknown property identifier (spec 2.2.2.2). A property given twice,
// or a Response Topic with a wildcard ([MQTT5-3.3.2-14]), is a protocol
// error (0x82). A 3.1.1 client sending garbage is just
// closed.
func TestV5DisconnectMalformed(t *testing.T) {
	tb := startBroker(t, nil)
	for _, tc := range []struct {
		name  string
		props []byte
		code  packets.ReasonCode
	}{
		{"Session Expiry in PUBLISH", []byte{0x11, 0, 0, 0, 1}, packets.MalformedPacket},
		{"unknown property 0x50", []byte{0x50, 1}, packets.MalformedPacket},
		{"Content Type that is not UTF-8", []byte{0x03, 0, 2, 0xC3, 0x28}, packets.MalformedPacket},
		{"Payload Format Indicator twice", []byte{0x01, 1, 0x01, 1}, packets.ProtocolError},
		{"Response Topic with a wildcard", []byte{0x08, 0, 3, 'a', '/', '#'}, packets.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tb.Stats().Malformed
			c, _ := mustConnectV5(t, tb.addr, "v5-malformed", true, 0)
			c.write(publishBytesV5("v5/m", 1, tc.props, "x"))
			c.expectDisconnect(tc.code)
			waitFor(t, "malformed counted", func() bool { return tb.Stats().Malformed > before })
		})
	}
	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("v3-malformed", true)
	v3.write([]byte{0x30, 5, 0, 3, 'a', '/', '#'}) // wildcard in a topic name
	v3.expectClosed(2 * time.Second)

}
