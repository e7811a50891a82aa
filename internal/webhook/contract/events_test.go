package contract

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// The builders below make one valid value of every event and packet type
// with the generated wire types, the way the broker does, so the tests also
// prove that what oapi-codegen generates marshals to what the spec accepts.

var (
	when    = time.Date(2025, 3, 1, 10, 15, 30, 123456789, time.UTC)
	session = wire.Session{
		ClientID: "c1", Username: "u", RemoteAddr: "127.0.0.1:5000", Listener: "default",
		Transport: wire.TransportTCP, ProtocolVersion: wire.ProtocolVersionMQTT5, CleanStart: true, KeepAlive: 60,
	}
	message = wire.Message{Topic: "a/b", Payload: []byte{0, 1, 0xff}, QOS: 1, Retain: true}
)

// mustUnion fills a union with one of its From* helpers and fails the test
// on error.
func mustUnion(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// allPackets returns one packet of every MQTT control packet type.
func allPackets(t *testing.T) []wire.Packet {
	t.Helper()
	expiry := int64(60)
	ct := "text/plain"
	fills := []func(*wire.Packet) error{
		func(p *wire.Packet) error {
			return p.FromConnectPacket(wire.ConnectPacket{ProtocolVersion: wire.ProtocolVersionMQTT311, ClientID: "c1",
				PasswordPresent: true, KeepAlive: 30, Will: &wire.Will{Topic: "w", QOS: 2, Payload: []byte("bye")}})
		},
		func(p *wire.Packet) error { return p.FromConnackPacket(wire.ConnackPacket{SessionPresent: true}) },
		func(p *wire.Packet) error {
			return p.FromPublishPacket(wire.PublishPacket{Topic: "a/b", QOS: 1, PacketID: 7, Payload: []byte("x"),
				Properties: &wire.MessageProperties{MessageExpiryInterval: &expiry, ContentType: &ct,
					CorrelationData: []byte{1, 2}, UserProperties: []wire.UserProperty{{Key: "k", Value: "v"}}}})
		},
		func(p *wire.Packet) error { return p.FromPubackPacket(wire.PubackPacket{PacketID: 7}) },
		func(p *wire.Packet) error {
			return p.FromPubrecPacket(wire.PubrecPacket{PacketID: 8, ReasonCode: 0x87})
		},
		func(p *wire.Packet) error { return p.FromPubrelPacket(wire.PubrelPacket{PacketID: 8}) },
		func(p *wire.Packet) error { return p.FromPubcompPacket(wire.PubcompPacket{PacketID: 8}) },
		func(p *wire.Packet) error {
			return p.FromSubscribePacket(wire.SubscribePacket{PacketID: 9, Subscriptions: []wire.Subscription{
				{TopicFilter: "a/#", QOS: 1, NoLocal: true, RetainHandling: 2}}})
		},
		func(p *wire.Packet) error {
			return p.FromSubackPacket(wire.SubackPacket{PacketID: 9, ReasonCodes: wire.ReasonCodes{1, 0x80}})
		},
		func(p *wire.Packet) error {
			return p.FromUnsubscribePacket(wire.UnsubscribePacket{PacketID: 10, TopicFilters: []string{"a/#"}})
		},
		func(p *wire.Packet) error {
			return p.FromUnsubackPacket(wire.UnsubackPacket{PacketID: 10, ReasonCodes: wire.ReasonCodes{}})
		},
		func(p *wire.Packet) error { return p.FromPingreqPacket(wire.PingreqPacket{}) },
		func(p *wire.Packet) error { return p.FromPingrespPacket(wire.PingrespPacket{}) },
		func(p *wire.Packet) error { return p.FromDisconnectPacket(wire.DisconnectPacket{ReasonCode: 0x8E}) },
		func(p *wire.Packet) error {
			return p.FromAuthPacket(wire.AuthPacket{ReasonCode: 0x18, Method: "SCRAM-SHA-1"})
		},
	}
	out := make([]wire.Packet, len(fills))
	for i, fill := range fills {
		mustUnion(t, fill(&out[i]))
	}
	return out
}

// allEvents returns one event of every type, with increasing seq; the two
// packet events carry a connect and a connack packet.
func allEvents(t *testing.T) []wire.Event {
	t.Helper()
	pkts := allPackets(t)
	publisher, target := "c1", "offline-2"
	const node = "node-1"
	fills := []func(e *wire.Event, id string, seq int64) error{
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerPreStartEvent(wire.BrokerPreStartEvent{ID: id, Seq: seq, Time: when, Broker: node,
				Config: map[string]any{"realm": "factory-7", "n": 3}})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerPostStartEvent(wire.BrokerPostStartEvent{ID: id, Seq: seq, Time: when, Broker: node})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerPreShutdownEvent(wire.BrokerPreShutdownEvent{ID: id, Seq: seq, Time: when, Broker: node})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerPostShutdownEvent(wire.BrokerPostShutdownEvent{ID: id, Seq: seq, Time: when, Broker: node})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerClientConnectedEvent(wire.BrokerClientConnectedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Session: session})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerClientDisconnectedEvent(wire.BrokerClientDisconnectedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Session: session, Reason: "client disconnected"})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerClientSubscribedEvent(wire.BrokerClientSubscribedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Session: session, Topic: "a/#", QOS: 2})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerClientUnsubscribedEvent(wire.BrokerClientUnsubscribedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Session: session, Topic: "a/#"})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerMessageReceivedEvent(wire.BrokerMessageReceivedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Message: message})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerMessageBroadcastEvent(wire.BrokerMessageBroadcastEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: &publisher, Message: message})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromBrokerRetainedMessageEvent(wire.BrokerRetainedMessageEvent{ID: id, Seq: seq, Time: when, Broker: node,
				TargetClientID: &target, Message: message})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromMQTTPacketReceivedEvent(wire.MQTTPacketReceivedEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Packet: pkts[0]})
		},
		func(e *wire.Event, id string, seq int64) error {
			return e.FromMQTTPacketSentEvent(wire.MQTTPacketSentEvent{ID: id, Seq: seq, Time: when, Broker: node,
				ClientID: "c1", Packet: pkts[1]})
		},
	}
	out := make([]wire.Event, len(fills))
	for i, fill := range fills {
		mustUnion(t, fill(&out[i], fmt.Sprintf("ev-%d", i+1), int64(i+1)))
	}
	return out
}

// asMap turns a value into its JSON object form so a test can break one
// field of it.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, v), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
