package mqtt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Helpers for the security tests (sec_*_test.go): hostile clients on real
// sockets against a broker whose hooks deny what the attacker is after.

// secDenyUser is a topic checker that denies user the given action on
// every topic under prefix and allows everything else.
func secDenyUser(user string, action Action, prefix string) extTopics {
	return func(_ context.Context, c *ClientInfo, r TopicRequest) TopicResult {
		if c.Username == user && r.Action == action && strings.HasPrefix(r.Topic, prefix) {
			return TopicResult{Reason: "not yours"}
		}
		return TopicResult{Allow: true}
	}
}

// secConnectAs connects a raw client with a user name (any password) and
// fails unless it is accepted.
func secConnectAs(t *testing.T, addr string, v packets.Version, p *packets.Connect, user string) *rawClient {
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
	if ack := extConnect(c, p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, p.ClientID)
	}
	return c
}

// secPublish1 publishes a QoS 1 message from a raw client and waits for
// its PUBACK.
func secPublish1(c *rawClient, pid uint16, topic, payload string, retain bool) *packets.Puback {
	c.t.Helper()
	c.send(&packets.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, PacketID: pid, Retain: retain})
	return extExpect(c, packets.PUBACK, pid).(*packets.Puback)
}

// secNextPayload reads PUBLISH packets (acknowledging QoS 1) and returns the
// next payload, failing after timeout.
func secNextPayload(c *rawClient, timeout time.Duration) string {
	c.t.Helper()
	p := c.expectPublish(timeout)
	if p.QoS == 1 {
		c.send(&packets.Puback{PacketID: p.PacketID})
	}
	return string(p.Payload)
}

// secRetained returns the payload retained on topic, and whether there is one.
func secRetained(b *Broker, topic string) (string, bool) {
	var got string
	found := false
	b.retain.Match(topic, func(_ string, m *Message) { got, found = string(m.Payload), true })
	return got, found
}

// secWaitDisconnected waits until the sink saw client id's disconnect
// event: the broker emits it after the connection's will was handled.
func secWaitDisconnected(t *testing.T, sink *extSink, id string) {
	t.Helper()
	waitFor(t, id+" disconnected", func() bool {
		for _, e := range sink.events() {
			if e.Type == EventClientDisconnected && e.ClientID == id {
				return true
			}
		}
		return false
	})
}
