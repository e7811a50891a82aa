package webhook

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// ackJSON is PUBACK, PUBREC, PUBREL and PUBCOMP: four schemas of one shape.
type ackJSON struct {
	PacketType string `json:"packet_type"`
	PacketID   int    `json:"packet_id"`
	ReasonCode int    `json:"reason_code"`
}

// packetJSON is the spec's form of a packet for the packet events. The
// password and authentication data stay out of it: a plugin learns only
// that they were there.
func packetJSON(pk packets.Packet) (any, error) {
	switch p := pk.(type) {
	case *packets.Connect:
		c := wire.ConnectPacket{PacketType: "connect", ProtocolVersion: wire.ProtocolVersion(p.ProtocolVersion),
			ClientID: p.ClientID, Username: p.Username, PasswordPresent: p.PasswordFlag,
			CleanStart: p.CleanStart, KeepAlive: int(p.KeepAlive)}
		if p.WillFlag {
			c.Will = &wire.Will{Topic: p.WillTopic, QOS: int(p.WillQoS), Retain: p.WillRetain, Payload: nonNil(p.WillPayload)}
		}
		return c, nil
	case *packets.Connack:
		return wire.ConnackPacket{PacketType: "connack", SessionPresent: p.SessionPresent, ReasonCode: int(p.ReasonCode)}, nil
	case *packets.Publish:
		return wire.PublishPacket{PacketType: "publish", Topic: p.Topic, QOS: int(p.QoS), Retain: p.Retain, Dup: p.Dup,
			PacketID: int(p.PacketID), Payload: nonNil(p.Payload), Properties: messageProps(&p.Props)}, nil
	case *packets.Puback:
		return ackJSON{"puback", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubrec:
		return ackJSON{"pubrec", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubrel:
		return ackJSON{"pubrel", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubcomp:
		return ackJSON{"pubcomp", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Subscribe:
		subs := make([]wire.Subscription, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			subs[i] = wire.Subscription{TopicFilter: s.Filter, QOS: int(s.QoS), NoLocal: s.NoLocal,
				RetainAsPublished: s.RetainAsPublished, RetainHandling: int(s.RetainHandling)}
		}
		return wire.SubscribePacket{PacketType: "subscribe", PacketID: int(p.PacketID), Subscriptions: subs}, nil
	case *packets.Suback:
		return wire.SubackPacket{PacketType: "suback", PacketID: int(p.PacketID), ReasonCodes: codes(p.ReasonCodes)}, nil
	case *packets.Unsubscribe:
		return wire.UnsubscribePacket{PacketType: "unsubscribe", PacketID: int(p.PacketID),
			TopicFilters: append([]string{}, p.Filters...)}, nil
	case *packets.Unsuback:
		return wire.UnsubackPacket{PacketType: "unsuback", PacketID: int(p.PacketID), ReasonCodes: codes(p.ReasonCodes)}, nil
	case *packets.Pingreq:
		return wire.PingreqPacket{PacketType: "pingreq"}, nil
	case *packets.Pingresp:
		return wire.PingrespPacket{PacketType: "pingresp"}, nil
	case *packets.Disconnect:
		return wire.DisconnectPacket{PacketType: "disconnect", ReasonCode: int(p.ReasonCode)}, nil
	case *packets.Auth:
		return wire.AuthPacket{PacketType: "auth", ReasonCode: int(p.ReasonCode), Method: p.Props.AuthMethod}, nil
	}
	return nil, fmt.Errorf("packet event without a known packet (%T)", pk)
}

// codes is never nil: reason_codes is a required array.
func codes(rcs []packets.ReasonCode) []int {
	out := make([]int, len(rcs))
	for i, rc := range rcs {
		out[i] = int(rc)
	}
	return out
}

// messageProps keeps the MQTT 5 properties that belong to the message
// (the ones a subscriber receives), or nil when it has none.
func messageProps(p *packets.Properties) *wire.MessageProperties {
	if p == nil {
		return nil
	}
	var m wire.MessageProperties
	some := false
	if p.Has(packets.PropPayloadFormat) {
		v := int(p.PayloadFormat)
		m.PayloadFormatIndicator, some = &v, true
	}
	if p.Has(packets.PropMessageExpiry) {
		v := int64(p.MessageExpiry)
		m.MessageExpiryInterval, some = &v, true
	}
	if p.Has(packets.PropContentType) {
		m.ContentType, some = &p.ContentType, true
	}
	if p.Has(packets.PropResponseTopic) {
		m.ResponseTopic, some = &p.ResponseTopic, true
	}
	if p.Has(packets.PropCorrelationData) {
		m.CorrelationData, some = nonNil(p.CorrelationData), true
	}
	for _, u := range p.User {
		m.UserProperties, some = append(m.UserProperties, wire.UserProperty{Key: u.Key, Value: u.Value}), true
	}
	if !some {
		return nil
	}
	return &m
}
