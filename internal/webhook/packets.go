package webhook

import (
	"fmt"
	"strconv"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// knownPacket reports whether appendPacket can write pk, so that an event
// is refused before any of it is written.
func knownPacket(pk packets.Packet) bool {
	switch pk.(type) {
	case *packets.Connect, *packets.Connack, *packets.Publish, *packets.Puback, *packets.Pubrec, *packets.Pubrel,
		*packets.Pubcomp, *packets.Subscribe, *packets.Suback, *packets.Unsubscribe, *packets.Unsuback,
		*packets.Pingreq, *packets.Pingresp, *packets.Disconnect, *packets.Auth:
		return true
	}
	return false
}

// appendPacket appends the spec's form of a packet for the packet events,
// fields in the order the generated wire types (and so encoding/json) put
// them. The password and authentication data stay out of it: a plugin
// learns only that they were there. Arrays are [] when empty, never null:
// the spec requires them.
//
// It stays one long switch on purpose: one case per packet type, each
// writing that packet's fields in wire order, reads and checks against the
// spec better in one place than spread over a function per packet.
func appendPacket(dst []byte, pk packets.Packet) ([]byte, error) {
	switch p := pk.(type) {
	case *packets.Connect:
		dst = append(dst, `{"clean_start":`...)
		dst = strconv.AppendBool(dst, p.CleanStart)
		dst = append(dst, `,"client_id":`...)
		dst = appendString(dst, p.ClientID)
		dst = append(dst, `,"keep_alive":`...)
		dst = strconv.AppendUint(dst, uint64(p.KeepAlive), 10)
		dst = append(dst, `,"packet_type":"connect","password_present":`...)
		dst = strconv.AppendBool(dst, p.PasswordFlag)
		dst = append(dst, `,"protocol_version":`...)
		dst = strconv.AppendUint(dst, uint64(p.ProtocolVersion), 10)
		dst = append(dst, `,"username":`...)
		dst = appendString(dst, p.Username)
		if p.WillFlag {
			dst = append(dst, `,"will":{"payload":`...)
			dst = appendBase64(dst, p.WillPayload)
			dst = append(dst, `,"qos":`...)
			dst = strconv.AppendUint(dst, uint64(p.WillQoS), 10)
			dst = append(dst, `,"retain":`...)
			dst = strconv.AppendBool(dst, p.WillRetain)
			dst = append(dst, `,"topic":`...)
			dst = appendString(dst, p.WillTopic)
			dst = append(dst, '}')
		}
	case *packets.Connack:
		dst = append(dst, `{"packet_type":"connack","reason_code":`...)
		dst = strconv.AppendUint(dst, uint64(p.ReasonCode), 10)
		dst = append(dst, `,"session_present":`...)
		dst = strconv.AppendBool(dst, p.SessionPresent)
	case *packets.Publish:
		dst = append(dst, `{"dup":`...)
		dst = strconv.AppendBool(dst, p.Dup)
		dst = append(dst, `,"packet_id":`...)
		dst = strconv.AppendUint(dst, uint64(p.PacketID), 10)
		dst = append(dst, `,"packet_type":"publish","payload":`...)
		dst = appendBase64(dst, p.Payload)
		dst = appendProperties(dst, &p.Props)
		dst = append(dst, `,"qos":`...)
		dst = strconv.AppendUint(dst, uint64(p.QoS), 10)
		dst = append(dst, `,"retain":`...)
		dst = strconv.AppendBool(dst, p.Retain)
		dst = append(dst, `,"topic":`...)
		dst = appendString(dst, p.Topic)
	case *packets.Puback:
		dst = appendAck(dst, "puback", p.PacketID, p.ReasonCode)
	case *packets.Pubrec:
		dst = appendAck(dst, "pubrec", p.PacketID, p.ReasonCode)
	case *packets.Pubrel:
		dst = appendAck(dst, "pubrel", p.PacketID, p.ReasonCode)
	case *packets.Pubcomp:
		dst = appendAck(dst, "pubcomp", p.PacketID, p.ReasonCode)
	case *packets.Subscribe:
		dst = appendPacketID(dst, p.PacketID, "subscribe")
		dst = append(dst, `,"subscriptions":[`...)
		for i, s := range p.Subscriptions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"no_local":`...)
			dst = strconv.AppendBool(dst, s.NoLocal)
			dst = append(dst, `,"qos":`...)
			dst = strconv.AppendUint(dst, uint64(s.QoS), 10)
			dst = append(dst, `,"retain_as_published":`...)
			dst = strconv.AppendBool(dst, s.RetainAsPublished)
			dst = append(dst, `,"retain_handling":`...)
			dst = strconv.AppendUint(dst, uint64(s.RetainHandling), 10)
			dst = append(dst, `,"topic_filter":`...)
			dst = appendString(dst, s.Filter)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	case *packets.Suback:
		dst = appendPacketID(dst, p.PacketID, "suback")
		dst = appendCodes(dst, p.ReasonCodes)
	case *packets.Unsubscribe:
		dst = appendPacketID(dst, p.PacketID, "unsubscribe")
		dst = append(dst, `,"topic_filters":[`...)
		for i, f := range p.Filters {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f)
		}
		dst = append(dst, ']')
	case *packets.Unsuback:
		dst = appendPacketID(dst, p.PacketID, "unsuback")
		dst = appendCodes(dst, p.ReasonCodes)
	case *packets.Pingreq:
		dst = append(dst, `{"packet_type":"pingreq"`...)
	case *packets.Pingresp:
		dst = append(dst, `{"packet_type":"pingresp"`...)
	case *packets.Disconnect:
		dst = append(dst, `{"packet_type":"disconnect","reason_code":`...)
		dst = strconv.AppendUint(dst, uint64(p.ReasonCode), 10)
	case *packets.Auth:
		dst = append(dst, `{"method":`...)
		dst = appendString(dst, p.Props.AuthMethod)
		dst = append(dst, `,"packet_type":"auth","reason_code":`...)
		dst = strconv.AppendUint(dst, uint64(p.ReasonCode), 10)
	default:
		return dst, fmt.Errorf("packet event without a known packet (%T)", pk)
	}
	return append(dst, '}'), nil
}

// appendAck appends PUBACK, PUBREC, PUBREL or PUBCOMP: four schemas of one
// shape, whose packet_type comes first.
func appendAck(dst []byte, typ string, id uint16, rc packets.ReasonCode) []byte {
	dst = append(dst, `{"packet_type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","packet_id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"reason_code":`...)
	return strconv.AppendUint(dst, uint64(rc), 10)
}

// appendPacketID opens the packets whose packet_id sorts before their
// packet_type.
func appendPacketID(dst []byte, id uint16, typ string) []byte {
	dst = append(dst, `{"packet_id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"packet_type":"`...)
	dst = append(dst, typ...)
	return append(dst, '"')
}

// appendCodes appends a reason_codes array, [] when there are none: the
// field is required.
func appendCodes(dst []byte, rcs []packets.ReasonCode) []byte {
	dst = append(dst, `,"reason_codes":[`...)
	for i, rc := range rcs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(rc), 10)
	}
	return append(dst, ']')
}
