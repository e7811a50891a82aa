package mqtt

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// secAllowOnCancel answers like a plugin chain configured "on-error: allow"
// whose call was cancelled: it allows whenever its context ends before it
// decided. It decides "deny" for anything else after a bounded wait, so a
// test that goes wrong ends anyway.
func secAllowOnCancel(ctx context.Context, entered chan<- struct{}) bool {
	if entered != nil {
		entered <- struct{}{}
	}
	select {
	case <-ctx.Done():
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// A client whose CONNECT is still being decided and who goes away (here a
// TCP half-close after a pipelined CONNECT + SUBSCRIBE + PUBLISH) is
// refused, whatever the Authenticator answers for the cancelled call: what
// it pipelined is never processed, so its forged publish reaches nobody.
func TestConnectDecidedAfterClientLeftIsRefused(t *testing.T) {
	auth := authFunc(func(ctx context.Context, c *ClientInfo, pw []byte) AuthResult {
		if string(pw) == "good" {
			return AuthResult{Allow: true}
		}
		if secAllowOnCancel(ctx, nil) {
			return AuthResult{Allow: true, Plugin: "on-error"}
		}
		return AuthResult{ReasonCode: 0x86, Reason: "bad password"}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	watch := dialRaw(t, tb.addr)
	if ack := watch.connectWith(&packets.Connect{ClientID: "watch", CleanStart: true, KeepAlive: 60,
		UsernameFlag: true, Username: "ops", PasswordFlag: true, Password: []byte("good")}); ack.ReasonCode != 0 {
		t.Fatalf("watcher refused: %v", ack.ReasonCode)
	}
	watch.subscribe(1, "secret/#", 0)

	var wire []byte
	for _, p := range []packets.Packet{
		&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V311, ClientID: "forger", CleanStart: true,
			KeepAlive: 60, UsernameFlag: true, Username: "ops", PasswordFlag: true, Password: []byte("guess")},
		&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "#", QoS: 0}}},
		&packets.Publish{Topic: "secret/valve", Payload: []byte("forged")},
	} {
		wire, _ = p.Append(wire, packets.V311)
	}
	conn, err := net.DialTimeout("tcp", tb.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Everything the broker says to the forger, up to its close.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the broker's answer: %v", err)
	}
	// It may not even hear the refusal (it is gone); it never hears more.
	if len(answer) > 0 && (len(answer) != 4 || answer[0] != 0x20 || answer[3] == 0) {
		t.Errorf("forger's answer % x, want at most a refusing CONNACK", answer)
	}
	watch.expectNothing(300 * time.Millisecond)
}

// A PUBLISH whose topic check is cancelled because the same client id
// connected again (a self-takeover) is never routed, whatever the checker
// answers for the cancelled call.
func TestPublishCheckCancelledByTakeoverNotRouted(t *testing.T) {
	entered := make(chan struct{}, 1)
	check := topicFunc(func(ctx context.Context, c *ClientInfo, r TopicRequest) TopicResult {
		if c.Username == "mallory" && r.Action == ActionPublish {
			return TopicResult{Allow: secAllowOnCancel(ctx, entered)}
		}
		return TopicResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = check })
	watch := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "watch", CleanStart: true}, "ops")
	watch.subscribe(1, "secret/#", 1)

	m := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "mallory"}, "mallory")
	m.send(&packets.Publish{Topic: "secret/valve", Payload: []byte("forged"), QoS: 1, PacketID: 7})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the publish check never started")
	}
	connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "mallory"}, "mallory")
	// The old connection ends once its PUBLISH was handled.
	for {
		p, err := m.tryRead(5 * time.Second)
		if err != nil {
			break
		}
		if ack, ok := p.(*packets.Puback); ok {
			t.Logf("old connection got PUBACK %d", ack.PacketID)
		}
	}
	watch.expectNothing(300 * time.Millisecond)
}
