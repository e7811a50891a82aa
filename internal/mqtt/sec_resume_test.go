package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A session belongs to the identity that made it. A client with another
// user name that connects with the same client id and Clean Start 0 gets a
// fresh session (session present 0): none of the messages addressed to the
// first user, in flight or queued, reach it, and the first user's
// subscriptions do not carry over. The same user resuming keeps its session.
func TestSessionResumedByOtherUserStartsClean(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Topics = secDenyUser("mallory", ActionReceive, "private/")
	})
	pub := secConnectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "pub", CleanStart: true}, "ops")

	alice := secConnectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "device-7"}, "alice")
	alice.subscribe(1, "private/#", 1)
	secPublish1(pub, 1, "private/alice", "in flight", false)
	if p := alice.expectPublish(2 * time.Second); string(p.Payload) != "in flight" {
		t.Fatalf("alice got %q", p.Payload)
	}
	alice.conn.Close() // without acknowledging it
	waitFor(t, "alice's session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	secPublish1(pub, 2, "private/alice", "queued", false)
	waitFor(t, "the message queued", func() bool { return tb.Stats().Queued == 1 })

	// Alice herself resumes her session: present, with both messages.
	again := dialRaw(t, tb.addr)
	if ack := extConnect(again, &packets.Connect{ClientID: "device-7", KeepAlive: 60,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("alice's resume: CONNACK %v present %v", ack.ReasonCode, ack.SessionPresent)
	}
	if p := again.expectPublish(2 * time.Second); string(p.Payload) != "in flight" || !p.Dup {
		t.Fatalf("alice's resend: %q dup %v", p.Payload, p.Dup)
	}
	again.conn.Close() // again without acknowledging
	waitFor(t, "alice's session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	m := dialRaw(t, tb.addr)
	ack := extConnect(m, &packets.Connect{ClientID: "device-7", KeepAlive: 60,
		UsernameFlag: true, Username: "mallory", PasswordFlag: true, Password: []byte("pw")})
	if ack.ReasonCode != 0 {
		t.Fatalf("mallory refused: %v", ack.ReasonCode)
	}
	if ack.SessionPresent {
		t.Errorf("mallory resumed alice's session (session present 1)")
	}
	m.expectNothing(300 * time.Millisecond)
	secPublish1(pub, 3, "private/alice", "live", false)
	m.expectNothing(300 * time.Millisecond)
}
