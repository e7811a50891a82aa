//go:build unix

package main

import (
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// rawConn is a bare MQTT 3.1.1 connection, for exchanges a client library
// would not let a test stop in the middle of.
type rawConn struct {
	t *testing.T
	c net.Conn
}

// dialRaw connects as id with clean session 0 and returns the connection
// and CONNACK's session present flag.
func dialRaw(t *testing.T, addr, id string) (*rawConn, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t, c}
	t.Cleanup(func() { c.Close() })
	r.send(&packets.Connect{ClientID: id, KeepAlive: 60})
	ack, ok := r.read().(*packets.Connack)
	if !ok || ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNECT answered %#v", id, ack)
	}
	return r, ack.SessionPresent
}

func (r *rawConn) send(p packets.Packet) {
	r.t.Helper()
	b, err := p.Append(nil, packets.V311)
	if err != nil {
		r.t.Fatal(err)
	}
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write %s: %v", p.Type(), err)
	}
}

func (r *rawConn) read() packets.Packet {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	p, err := packets.ReadPacket(r.c, packets.V311, 0)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// A QoS 2 PUBLISH answered with PUBREC before the restart completes after
// it: the PUBREL is answered with PUBCOMP, and the message reaches the
// persistent subscriber exactly once.
func TestPersistQoS2HandshakeAcrossRestarts(t *testing.T) {
	for _, mode := range restartModes {
		t.Run(mode.name, func(t *testing.T) {
			b := newBrokerProc(t, "")
			b.start()
			sub, _ := client311(t, b.mqttAddr, "q2-sub", false, nil)
			waitToken(t, "subscribe", sub.Subscribe("x/#", 2, nil))
			sub.Disconnect(250)

			pub, _ := dialRaw(t, b.mqttAddr, "q2-pub")
			pub.send(&packets.Publish{QoS: 2, PacketID: 7, Topic: "x/1", Payload: []byte("once")})
			if rec, ok := pub.read().(*packets.Pubrec); !ok || rec.PacketID != 7 {
				t.Fatalf("PUBLISH QoS 2 answered %#v, want PUBREC 7", rec)
			}
			mode.restart(b)

			pub, present := dialRaw(t, b.mqttAddr, "q2-pub")
			if !present {
				t.Fatal("the publisher's session (with packet id 7 awaiting PUBREL) was lost")
			}
			pub.send(&packets.Pubrel{PacketID: 7})
			if comp, ok := pub.read().(*packets.Pubcomp); !ok || comp.PacketID != 7 {
				t.Fatalf("PUBREL 7 answered %#v, want PUBCOMP 7", comp)
			}

			msgs := make(chan received, 10)
			sub, present = client311(t, b.mqttAddr, "q2-sub", false, msgs)
			defer sub.Disconnect(100)
			if !present {
				t.Fatal("the subscriber's session was lost")
			}
			if got := nextMsg(t, msgs, "once"); got != (received{"x/1", "once", 2}) {
				t.Fatalf("subscriber got %+v, want x/1 once at QoS 2", got)
			}
			marker, _ := client311(t, b.mqttAddr, "marker", true, nil)
			defer marker.Disconnect(100)
			waitToken(t, "marker", marker.Publish("x/end", 1, false, "end"))
			if got := nextMsg(t, msgs, "the marker"); got.payload != "end" {
				t.Errorf("after the QoS 2 message the subscriber got %+v, want the marker (a second copy is a defect)", got)
			}
		})
	}
}
