package mqtt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// CONNECT validation answers per the spec, byte for byte.
func TestConnectValidation(t *testing.T) {
	tb := startBroker(t, nil)
	cases := []struct {
		name  string
		raw   []byte
		reply []byte // nil: closed without CONNACK
	}{
		{"good 3.1.1", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'a'}, []byte{0x20, 2, 0, 0}},
		{"good 3.1 MQIsdp", []byte{0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 1, 'b'}, []byte{0x20, 2, 0, 0}},
		// [MQTT-3.1.2-2] unsupported level → CONNACK 0x01
		{"level 6", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 1, 'c'}, []byte{0x20, 2, 0, 1}},
		// [MQTT-3.1.2-1] wrong protocol name → close
		{"wrong name", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'd'}, nil},
		// [MQTT-3.1.3-8] empty id without clean session → 0x02
		{"empty id persistent", []byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 60, 0, 0}, []byte{0x20, 2, 0, 2}},
		// [MQTT-3.1.2-3] reserved flag → close
		{"reserved flag", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 60, 0, 1, 'e'}, nil},
		// [MQTT-3.1.0-1] first packet not CONNECT → close
		{"publish first", []byte{0x30, 5, 0, 1, 't', 'h', 'i'}, nil},
		{"pingreq first", []byte{0xC0, 0}, nil},
		// invalid UTF-8 in the client id → close
		{"bad utf8 id", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 0xFF}, nil},
		// 5-byte remaining length → close
		{"5-byte length", []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, nil},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			c.write(tc.raw)
			if tc.reply != nil {
				got := make([]byte, len(tc.reply))
				c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.r.Read(got); err != nil {
					t.Fatalf("read: %v", err)
				}
				if string(got) != string(tc.reply) {
					t.Fatalf("reply % x, want % x", got, tc.reply)
				}
				if tc.reply[3] != 0 {
					c.expectClosed(2 * time.Second)
				}
				return
			}
			c.expectClosed(2 * time.Second)
		})
	}
	// After all that, a well-behaved client still connects.
	c := dialRaw(t, tb.addr)
	c.mustConnect("after-garbage", true)
}

// An empty client id with a clean session gets a broker-assigned id.
func TestAssignedClientID(t *testing.T) {
	var got *ClientInfo
	auth := authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
		cc := *c
		got = &cc
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	c := dialRaw(t, tb.addr)
	c.mustConnect("", true)
	if got == nil || !got.AssignedID || !strings.HasPrefix(got.ClientID, "mqttd-") {
		t.Fatalf("assigned id: %+v", got)
	}
}

// Malformed input after CONNECT closes that one connection; others are
// untouched and new clients connect.
func TestMalformedClosesOnlyThatConnection(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxPacketSize = 1024 })
	bystander := dialRaw(t, tb.addr)
	bystander.mustConnect("bystander", true)
	bystander.subscribe(1, "ok", 0)

	bad := map[string][]byte{
		"wildcard topic":  {0x30, 5, 0, 3, 'a', '/', '#'},
		"plus topic":      {0x30, 5, 0, 3, 'a', '+', 'b'},
		"qos 3":           {0x36, 5, 0, 1, 'a', 0, 1},
		"packet id 0":     {0x32, 5, 0, 1, 'a', 0, 0},
		"bad utf8 topic":  {0x30, 5, 0, 3, 'a', 0xC0, 0x80},
		"nul in topic":    {0x30, 5, 0, 3, 'a', 0, 'b'},
		"5-byte length":   {0x30, 0x80, 0x80, 0x80, 0x80, 0x01},
		"oversize":        append([]byte{0x30, 0x80, 0x10, 0, 1, 'a'}, make([]byte, 2045)...),
		"second connect":  {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'a'},
		"subscribe flags": {0x80, 6, 0, 1, 0, 1, 'a', 0},
		"server packet":   {0x20, 2, 0, 0},
		"reserved type":   {0x00, 0},
	}
	for name, raw := range bad {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			c.mustConnect("bad-"+strings.ReplaceAll(name, " ", "-"), true)
			c.write(raw)
			c.expectClosed(2 * time.Second)
		})
	}
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("after", true)
	pub.send(&packets.Publish{Topic: "ok", Payload: []byte("still here")})
	if m := bystander.expectPublish(2 * time.Second); string(m.Payload) != "still here" {
		t.Fatalf("bystander got %+v", m)
	}
	if st := tb.Stats(); st.Malformed < int64(len(bad)) {
		t.Fatalf("malformed counter %d, want ≥ %d", st.Malformed, len(bad))
	}
}

// A connection that never sends CONNECT is closed after connect-timeout.
func TestConnectTimeout(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.ConnectTimeout = 200 * time.Millisecond })
	c := dialRaw(t, tb.addr)
	c.expectClosed(2 * time.Second)
}

// Beyond max-connections a client gets CONNACK 0x03 and is closed; once a
// slot frees up, clients connect again.
func TestMaxConnections(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxConnections = 2 })
	a := dialRaw(t, tb.addr)
	a.mustConnect("a", true)
	b := dialRaw(t, tb.addr)
	b.mustConnect("b", true)
	c := dialRaw(t, tb.addr)
	if ack := c.connect("c", true, 0); ack.ReasonCode != packets.ConnRefusedServerUnavailable {
		t.Fatalf("CONNACK %#x, want 0x03", byte(ack.ReasonCode))
	}
	c.expectClosed(2 * time.Second)
	if tb.Stats().ConnectionsRefused != 1 {
		t.Fatalf("refused = %d", tb.Stats().ConnectionsRefused)
	}
	a.send(&packets.Disconnect{})
	a.expectClosed(2 * time.Second)
	waitFor(t, "slot freed", func() bool { return tb.nconns.Load() < 2 })
	d := dialRaw(t, tb.addr)
	d.mustConnect("d", true)
}

// A refused CONNECT changes nothing: the connected client with that id
// stays connected and keeps its session.
func TestRefusedConnectLeavesSessionAlone(t *testing.T) {
	auth := authFunc(func(_ context.Context, c *ClientInfo, pw []byte) AuthResult {
		if string(pw) == "good" {
			return AuthResult{Allow: true}
		}
		return AuthResult{ReasonCode: 0x86, Reason: "bad password"}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	victim := dialRaw(t, tb.addr)
	victim.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "victim", UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("good")})
	if ack := victim.read(time.Second).(*packets.Connack); ack.ReasonCode != 0 {
		t.Fatalf("victim refused: %v", ack.ReasonCode)
	}
	victim.subscribe(1, "v", 1)

	attacker := dialRaw(t, tb.addr)
	attacker.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "victim", CleanStart: true, UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("bad")})
	ack := attacker.read(time.Second).(*packets.Connack)
	if ack.ReasonCode != packets.ConnRefusedBadUsernameOrPassword || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want 0x04 with session present 0", ack)
	}
	attacker.expectClosed(2 * time.Second)

	victim.send(&packets.Pingreq{})
	if _, ok := victim.read(time.Second).(*packets.Pingresp); !ok {
		t.Fatal("victim was disconnected by a refused CONNECT")
	}
	pub := dialRaw(t, tb.addr)
	pub.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "p", CleanStart: true, UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("good")})
	pub.read(time.Second)
	pub.send(&packets.Publish{Topic: "v", Payload: []byte("x")})
	victim.expectPublish(2 * time.Second)
}
