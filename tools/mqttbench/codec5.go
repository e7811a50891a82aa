package main

// The MQTT 5.0 side of the codec: what changes for the packets the load
// generator sends and receives (OASIS MQTT Version 5.0, chapter 3). Like
// the 3.1.1 codec it shares nothing with the broker's packet package, and
// its encoders append to caller-owned slices and its decoders return
// sub-slices of their input.
//
// What a 5.0 client does differently here:
//   - CONNECT says protocol level 5 and carries a (possibly empty)
//     property section after the keep-alive.
//   - CONNACK carries a reason code and properties; the ones that bind a
//     client (Receive Maximum, Maximum Packet Size, Server Keep Alive,
//     Maximum QoS) are read, every other one is skipped.
//   - SUBSCRIBE and SUBACK carry properties; the byte after a topic filter
//     is a set of subscription options, not just the QoS.
//   - PUBLISH carries properties between the packet id and the payload.
//   - PUBACK, PUBREC, PUBREL and PUBCOMP may carry a reason code and
//     properties; the two-byte form means "success, no properties", which
//     is the form sent here.
//   - DISCONNECT carries a reason code, in both directions.

import (
	"encoding/binary"
	"errors"
)

const (
	protocolLevel311 = 4
	protocolLevel5   = 5

	typeAuth = 15 // 5.0 only; never expected here, we announce no method
)

// Property identifiers, MQTT 5.0 section 2.2.2.2.
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUserProperty         = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
)

// Value encodings of properties, section 2.2.2.2's "Type" column.
const (
	kindByte = iota + 1
	kindTwo
	kindFour
	kindVarint
	kindString // UTF-8 string or binary data: two-byte length, then bytes
	kindPair   // UTF-8 string pair
)

// propKind is the encoding of each property id, 0 for ids the
// specification does not define (a malformed packet).
var propKind = [256]byte{
	propPayloadFormat:        kindByte,
	propMessageExpiry:        kindFour,
	propContentType:          kindString,
	propResponseTopic:        kindString,
	propCorrelationData:      kindString,
	propSubscriptionID:       kindVarint,
	propSessionExpiry:        kindFour,
	propAssignedClientID:     kindString,
	propServerKeepAlive:      kindTwo,
	propAuthMethod:           kindString,
	propAuthData:             kindString,
	propRequestProblemInfo:   kindByte,
	propWillDelay:            kindFour,
	propRequestResponseInfo:  kindByte,
	propResponseInfo:         kindString,
	propServerReference:      kindString,
	propReasonString:         kindString,
	propReceiveMaximum:       kindTwo,
	propTopicAliasMaximum:    kindTwo,
	propTopicAlias:           kindTwo,
	propMaximumQoS:           kindByte,
	propRetainAvailable:      kindByte,
	propUserProperty:         kindPair,
	propMaximumPacketSize:    kindFour,
	propWildcardSubAvailable: kindByte,
	propSubIDAvailable:       kindByte,
	propSharedSubAvailable:   kindByte,
}

var (
	errBadProperty   = errors.New("mqtt: malformed or unknown property")
	errPropertyBound = errors.New("mqtt: property length beyond the packet")
)

// Reason codes this client interprets (section 2.4); everything >= 0x80
// is a failure.
const (
	reasonSuccess = 0x00
	reasonFailure = 0x80 // this and above: the request failed
)

// readVarint decodes a variable byte integer (section 1.5.5) at the start
// of b and returns it with the number of bytes it took.
func readVarint(b []byte) (v, n int, err error) {
	mul := 1
	for n < 4 {
		if n >= len(b) {
			return 0, 0, errShortPacket
		}
		c := b[n]
		v += int(c&0x7f) * mul
		mul <<= 7
		n++
		if c&0x80 == 0 {
			return v, n, nil
		}
	}
	return 0, 0, errMalformedLength
}

// splitProps reads a property length at the start of b and returns the
// properties and what follows them.
func splitProps(b []byte) (props, rest []byte, err error) {
	l, n, err := readVarint(b)
	if err != nil {
		return nil, nil, err
	}
	if len(b)-n < l {
		return nil, nil, errPropertyBound
	}
	return b[n : n+l], b[n+l:], nil
}

// nextProp splits the first property off props: its id, its value bytes
// (for strings and pairs including their length prefixes) and the rest.
func nextProp(props []byte) (id byte, val, rest []byte, err error) {
	if len(props) == 0 {
		return 0, nil, nil, errShortPacket
	}
	id = props[0]
	b := props[1:]
	var n int
	switch propKind[id] {
	case kindByte:
		n = 1
	case kindTwo:
		n = 2
	case kindFour:
		n = 4
	case kindVarint:
		_, vn, verr := readVarint(b)
		if verr != nil {
			return 0, nil, nil, errBadProperty
		}
		n = vn
	case kindString:
		if len(b) < 2 {
			return 0, nil, nil, errBadProperty
		}
		n = 2 + int(binary.BigEndian.Uint16(b))
	case kindPair:
		if len(b) < 2 {
			return 0, nil, nil, errBadProperty
		}
		k := 2 + int(binary.BigEndian.Uint16(b))
		if len(b) < k+2 {
			return 0, nil, nil, errBadProperty
		}
		n = k + 2 + int(binary.BigEndian.Uint16(b[k:]))
	default:
		return 0, nil, nil, errBadProperty
	}
	if len(b) < n {
		return 0, nil, nil, errBadProperty
	}
	return id, b[:n], b[n:], nil
}

// checkProps walks props and fails on an unknown or truncated property.
func checkProps(props []byte) error {
	for len(props) > 0 {
		_, _, rest, err := nextProp(props)
		if err != nil {
			return err
		}
		props = rest
	}
	return nil
}

// appendConnect5 encodes a 5.0 CONNECT: the 3.1.1 layout with level 5 and
// an empty property section after the keep-alive. Every CONNECT property
// is left at its default: Receive Maximum 65535 and no Maximum Packet Size
// (so a broker's own limits apply, as they do for 3.1.1 clients), Session
// Expiry 0 (clean_session semantics), no topic aliases towards us.
func appendConnect5(dst []byte, o connectOptions) []byte {
	var flags byte
	if o.cleanSession {
		flags |= 0x02 // Clean Start [MQTT5-3.1.2-4]
	}
	var props []byte
	if o.sessionExpiry > 0 {
		props = binary.BigEndian.AppendUint32([]byte{propSessionExpiry}, o.sessionExpiry)
	}
	rl := 10 + 1 + len(props) + 2 + len(o.clientID)
	if o.username != "" {
		flags |= 0x80
		rl += 2 + len(o.username)
	}
	// 5.0 allows a password without a user name (section 3.1.2.9).
	if o.password != "" {
		flags |= 0x40
		rl += 2 + len(o.password)
	}
	dst = append(dst, typeConnect<<4)
	dst = appendVarint(dst, rl)
	dst = appendString(dst, "MQTT")
	dst = append(dst, protocolLevel5, flags)
	dst = binary.BigEndian.AppendUint16(dst, o.keepAlive)
	dst = append(dst, byte(len(props))) // property length (at most 5: one byte)
	dst = append(dst, props...)
	dst = appendString(dst, o.clientID)
	if o.username != "" {
		dst = appendString(dst, o.username)
	}
	if o.password != "" {
		dst = appendString(dst, o.password)
	}
	return dst
}

// serverLimits are the CONNACK properties a 5.0 client must obey.
type serverLimits struct {
	receiveMax uint16 // QoS 1/2 publishes we may leave unacknowledged [MQTT5-3.3.4-7]
	maxPacket  uint32 // largest packet we may send; 0 = no limit [MQTT5-3.2.2-15]
	keepAlive  int    // Server Keep Alive in seconds, -1 when absent [MQTT5-3.2.2-21]
	maxQoS     byte   // highest QoS the server accepts [MQTT5-3.2.2-11]
}

// defaultLimits are the values the specification gives absent properties,
// and what a 3.1.1 broker implies.
var defaultLimits = serverLimits{receiveMax: 65535, keepAlive: -1, maxQoS: 2}

// parseConnack5 decodes a 5.0 CONNACK: flags, reason code, properties.
// A two-byte body (no property length) is accepted so that a broker that
// answers in the 3.1.1 format, as one without 5.0 does to refuse level 5
// [MQTT-3.1.2-2], gets its return code reported rather than a parse error.
func parseConnack5(body []byte) (sessionPresent bool, reason byte, lim serverLimits, err error) {
	lim = defaultLimits
	if len(body) < 2 {
		return false, 0, lim, errShortPacket
	}
	sessionPresent, reason = body[0]&1 == 1, body[1]
	if len(body) == 2 {
		return sessionPresent, reason, lim, nil
	}
	props, rest, err := splitProps(body[2:])
	if err != nil {
		return false, 0, lim, err
	}
	if len(rest) != 0 {
		return false, 0, lim, errShortPacket
	}
	for len(props) > 0 {
		id, val, next, perr := nextProp(props)
		if perr != nil {
			return false, 0, lim, perr
		}
		switch id {
		case propReceiveMaximum:
			lim.receiveMax = binary.BigEndian.Uint16(val)
			if lim.receiveMax == 0 {
				return false, 0, lim, errBadProperty // 0 is a protocol error (3.2.2.3.3)
			}
		case propMaximumPacketSize:
			lim.maxPacket = binary.BigEndian.Uint32(val)
			if lim.maxPacket == 0 {
				return false, 0, lim, errBadProperty // likewise (3.2.2.3.6)
			}
		case propServerKeepAlive:
			lim.keepAlive = int(binary.BigEndian.Uint16(val))
		case propMaximumQoS:
			if val[0] > 1 {
				return false, 0, lim, errBadProperty // only 0 or 1 may be sent
			}
			lim.maxQoS = val[0]
		}
		props = next
	}
	return sessionPresent, reason, lim, nil
}

// appendSubscribe5 encodes a 5.0 SUBSCRIBE with no properties and one
// filter. opts is the subscription options byte (section 3.8.3.1): QoS in
// bits 0-1, No Local bit 2, Retain As Published bit 3, Retain Handling
// bits 4-5.
func appendSubscribe5(dst []byte, id uint16, filter string, opts byte) []byte {
	dst = append(dst, typeSubscribe<<4|0x02)
	dst = appendVarint(dst, 2+1+2+len(filter)+1)
	dst = binary.BigEndian.AppendUint16(dst, id)
	dst = append(dst, 0) // property length
	dst = appendString(dst, filter)
	return append(dst, opts)
}

// parseSuback5 returns the packet id and the reason codes (granted QoS, or
// >= 0x80 for a refusal); codes aliases body.
func parseSuback5(body []byte) (id uint16, codes []byte, err error) {
	if len(body) < 2 {
		return 0, nil, errShortPacket
	}
	props, rest, err := splitProps(body[2:])
	if err != nil {
		return 0, nil, err
	}
	if err := checkProps(props); err != nil {
		return 0, nil, err
	}
	if len(rest) == 0 {
		return 0, nil, errShortPacket
	}
	return binary.BigEndian.Uint16(body), rest, nil
}

// appendPublishProps encodes the property section -v5-props sends with
// every message: a Message Expiry Interval, which the broker must count
// down when it forwards [MQTT5-3.3.2-6], and one User Property, which it
// must pass through unaltered [MQTT5-3.3.2-17]. The result goes to
// appendPublish5 as props.
func appendPublishProps(dst []byte, expiry uint32, key, value string) []byte {
	dst = append(dst, propMessageExpiry)
	dst = binary.BigEndian.AppendUint32(dst, expiry)
	dst = append(dst, propUserProperty)
	dst = appendString(dst, key)
	return appendString(dst, value)
}

// appendPublish5 encodes a 5.0 PUBLISH with the given encoded properties
// (nil for none). As with appendPublish the payload comes last.
func appendPublish5(dst []byte, topic string, qos byte, id uint16, props, payload []byte) []byte {
	rl := 2 + len(topic) + varintLen(len(props)) + len(props) + len(payload)
	if qos > 0 {
		rl += 2
	}
	dst = append(dst, typePublish<<4|qos<<1)
	dst = appendVarint(dst, rl)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, id)
	}
	dst = appendVarint(dst, len(props))
	dst = append(dst, props...)
	return append(dst, payload...)
}

// parsePublish5 decodes a 5.0 PUBLISH body; topic, props and payload alias
// body. The properties are bounded but not walked: the hot path only
// looks into them with -v5-props (see publishPropsOK).
func parsePublish5(flags byte, body []byte) (topic, props, payload []byte, qos byte, id uint16, err error) {
	qos = flags >> 1 & 3
	if qos == 3 {
		return nil, nil, nil, 0, 0, errBadFlags // [MQTT5-3.3.1-4]
	}
	if len(body) < 2 {
		return nil, nil, nil, 0, 0, errShortPacket
	}
	tl := int(binary.BigEndian.Uint16(body))
	p := 2 + tl
	if qos > 0 {
		p += 2
	}
	if len(body) < p {
		return nil, nil, nil, 0, 0, errShortPacket
	}
	topic = body[2 : 2+tl]
	if qos > 0 {
		id = binary.BigEndian.Uint16(body[2+tl:])
	}
	props, payload, err = splitProps(body[p:])
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	return topic, props, payload, qos, id, nil
}

// publishPropsOK reports whether props hold the User Property key=value
// and a Message Expiry Interval of at most maxExpiry seconds (and more
// than 0: a forwarded message has time left, or it would have expired).
func publishPropsOK(props []byte, maxExpiry uint32, key, value string) bool {
	var user, expiry bool
	for len(props) > 0 {
		id, val, rest, err := nextProp(props)
		if err != nil {
			return false
		}
		switch id {
		case propMessageExpiry:
			e := binary.BigEndian.Uint32(val)
			expiry = e > 0 && e <= maxExpiry
		case propUserProperty:
			kl := int(binary.BigEndian.Uint16(val))
			if string(val[2:2+kl]) == key && string(val[2+kl+2:]) == value {
				user = true
			}
		}
		props = rest
	}
	return user && expiry
}

// parseAck5 returns the packet id and reason code of a 5.0 PUBACK, PUBREC,
// PUBREL or PUBCOMP. Three forms are valid: id only (success, remaining
// length 2), id and reason code (remaining length 3), and id, reason code
// and properties (section 3.4.2.1).
func parseAck5(body []byte) (id uint16, reason byte, err error) {
	if len(body) < 2 {
		return 0, 0, errShortPacket
	}
	id = binary.BigEndian.Uint16(body)
	if len(body) == 2 {
		return id, reasonSuccess, nil
	}
	reason = body[2]
	if len(body) == 3 {
		return id, reason, nil
	}
	props, rest, err := splitProps(body[3:])
	if err != nil {
		return 0, 0, err
	}
	if len(rest) != 0 {
		return 0, 0, errShortPacket // bytes after the properties
	}
	if err := checkProps(props); err != nil {
		return 0, 0, err
	}
	return id, reason, nil
}

// appendDisconnect5 encodes a DISCONNECT with a reason code and no
// properties (remaining length 1, section 3.14.2.2).
func appendDisconnect5(dst []byte, reason byte) []byte {
	return append(dst, typeDisconnect<<4, 1, reason)
}

// parseDisconnect5 returns the reason code of a 5.0 DISCONNECT; an empty
// body means 0x00, normal disconnection.
func parseDisconnect5(body []byte) (reason byte, err error) {
	if len(body) == 0 {
		return reasonSuccess, nil
	}
	reason = body[0]
	if len(body) == 1 {
		return reason, nil
	}
	props, rest, err := splitProps(body[1:])
	if err != nil {
		return reason, err
	}
	if len(rest) != 0 {
		return reason, errShortPacket
	}
	return reason, checkProps(props)
}
