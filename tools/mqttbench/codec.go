package main

// A deliberately small MQTT 3.1.1 codec (5.0 in codec5.go): only the packets a load generator
// sends or receives. It is written independently of the broker's packet
// package so that a bug shared by both sides cannot hide itself (a broker
// that mis-encodes PUBLISH would be "understood" by its own decoder).
//
// Encoders append to a caller-owned slice and decoders return sub-slices of
// the input, so neither allocates once the caller's buffers are sized.

import (
	"encoding/binary"
	"errors"
)

// Packet types (high nibble of the fixed header), MQTT 3.1.1 section 2.2.1.
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typePubrec     = 5
	typePubrel     = 6
	typePubcomp    = 7
	typeSubscribe  = 8
	typeSuback     = 9
	typePingreq    = 12
	typePingresp   = 13
	typeDisconnect = 14
)

var (
	errMalformedLength = errors.New("mqtt: malformed remaining length")
	errShortPacket     = errors.New("mqtt: packet shorter than its fields")
	errBadFlags        = errors.New("mqtt: invalid fixed header flags")
)

// appendVarint appends the MQTT variable length integer encoding of n.
func appendVarint(dst []byte, n int) []byte {
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}

// varintLen is the number of bytes appendVarint writes for n.
func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	default:
		return 4
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// connectOptions are the CONNECT fields the load generator varies.
type connectOptions struct {
	clientID     string
	keepAlive    uint16 // seconds; 0 disables keep-alive on the broker side
	cleanSession bool
	username     string // sent only when non-empty
	password     string // sent only when username is set (3.1.1)
	v5           bool   // MQTT 5.0 (appendConnect5) rather than 3.1.1
	// sessionExpiry is the 5.0 Session Expiry Interval in seconds; 0 =
	// absent (the session ends with the connection).
	sessionExpiry uint32
}

// appendConnect encodes a 3.1.1 CONNECT (protocol name "MQTT", level 4).
func appendConnect(dst []byte, o connectOptions) []byte {
	var flags byte
	if o.cleanSession {
		flags |= 0x02
	}
	rl := 10 + 2 + len(o.clientID)
	if o.username != "" {
		flags |= 0x80
		rl += 2 + len(o.username)
		if o.password != "" {
			flags |= 0x40
			rl += 2 + len(o.password)
		}
	}
	dst = append(dst, typeConnect<<4)
	dst = appendVarint(dst, rl)
	dst = appendString(dst, "MQTT")
	dst = append(dst, 4, flags)
	dst = binary.BigEndian.AppendUint16(dst, o.keepAlive)
	dst = appendString(dst, o.clientID)
	if o.username != "" {
		dst = appendString(dst, o.username)
		if o.password != "" {
			dst = appendString(dst, o.password)
		}
	}
	return dst
}

// appendSubscribe encodes a SUBSCRIBE with one topic filter. The fixed
// header flags must be 0010 [MQTT-3.8.1-1].
func appendSubscribe(dst []byte, id uint16, filter string, qos byte) []byte {
	dst = append(dst, typeSubscribe<<4|0x02)
	dst = appendVarint(dst, 2+2+len(filter)+1)
	dst = binary.BigEndian.AppendUint16(dst, id)
	dst = appendString(dst, filter)
	return append(dst, qos)
}

// appendPublish encodes a PUBLISH. id is written only for QoS 1 and 2
// [MQTT-2.3.1-5]. The payload follows the header directly, so the caller
// can find it at len(result)-len(payload) and rewrite it in place.
func appendPublish(dst []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	rl := 2 + len(topic) + len(payload)
	if qos > 0 {
		rl += 2
	}
	dst = append(dst, typePublish<<4|qos<<1)
	dst = appendVarint(dst, rl)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, id)
	}
	return append(dst, payload...)
}

// appendAck encodes one of the four two-byte acknowledgements: PUBACK,
// PUBREC, PUBREL or PUBCOMP. PUBREL carries flags 0010 [MQTT-3.6.1-1].
func appendAck(dst []byte, typ byte, id uint16) []byte {
	h := typ << 4
	if typ == typePubrel {
		h |= 0x02
	}
	return append(dst, h, 2, byte(id>>8), byte(id))
}

func appendPingreq(dst []byte) []byte    { return append(dst, typePingreq<<4, 0) }
func appendDisconnect(dst []byte) []byte { return append(dst, typeDisconnect<<4, 0) }

// parsePacket splits the first complete packet off buf. It returns n == 0
// and no error when buf holds only part of a packet, so the caller reads
// more; need is then the total packet size when it is already known (so a
// caller can grow its buffer for a packet larger than it), else 0.
func parsePacket(buf []byte) (typ, flags byte, body []byte, n, need int, err error) {
	if len(buf) < 2 {
		return 0, 0, nil, 0, 0, nil
	}
	rl, mul := 0, 1
	i := 1
	for {
		if i > 4 {
			return 0, 0, nil, 0, 0, errMalformedLength
		}
		if i >= len(buf) {
			return 0, 0, nil, 0, 0, nil
		}
		b := buf[i]
		rl += int(b&0x7f) * mul
		mul <<= 7
		i++
		if b&0x80 == 0 {
			break
		}
	}
	total := i + rl
	if len(buf) < total {
		return 0, 0, nil, 0, total, nil
	}
	return buf[0] >> 4, buf[0] & 0x0f, buf[i:total], total, total, nil
}

// parseConnack returns the session-present flag and return code.
func parseConnack(body []byte) (sessionPresent bool, code byte, err error) {
	if len(body) != 2 {
		return false, 0, errShortPacket
	}
	return body[0]&1 == 1, body[1], nil
}

// parseSuback returns the packet id and the granted QoS (or 0x80) codes;
// codes aliases body.
func parseSuback(body []byte) (id uint16, codes []byte, err error) {
	if len(body) < 3 {
		return 0, nil, errShortPacket
	}
	return binary.BigEndian.Uint16(body), body[2:], nil
}

// parseAck returns the packet id of PUBACK, PUBREC, PUBREL or PUBCOMP.
func parseAck(body []byte) (uint16, error) {
	if len(body) != 2 {
		return 0, errShortPacket
	}
	return binary.BigEndian.Uint16(body), nil
}

// parsePublish decodes a PUBLISH body. topic and payload alias body.
func parsePublish(flags byte, body []byte) (topic, payload []byte, qos byte, id uint16, err error) {
	qos = flags >> 1 & 3
	if qos == 3 {
		return nil, nil, 0, 0, errBadFlags // [MQTT-3.3.1-4]
	}
	if len(body) < 2 {
		return nil, nil, 0, 0, errShortPacket
	}
	tl := int(binary.BigEndian.Uint16(body))
	p := 2 + tl
	if qos > 0 {
		p += 2
	}
	if len(body) < p {
		return nil, nil, 0, 0, errShortPacket
	}
	topic = body[2 : 2+tl]
	if qos > 0 {
		id = binary.BigEndian.Uint16(body[2+tl:])
	}
	return topic, body[p:], qos, id, nil
}

// The benchmark payload: a fixed 24-byte header followed by filler.
//
//	0..3   magic "mqb1" (catches corruption and stray messages)
//	4..7   publisher index, big endian
//	8..15  sequence number within the publisher, from 0
//	16..23 send time, nanoseconds since the run's monotonic base
const (
	payloadHeader = 24
	payloadMagic  = "mqb1"
)

// stampPayload writes the header fields into p (len(p) >= payloadHeader).
func stampPayload(p []byte, pub uint32, seq uint64, sentNs int64) {
	copy(p[0:4], payloadMagic)
	binary.BigEndian.PutUint32(p[4:8], pub)
	binary.BigEndian.PutUint64(p[8:16], seq)
	binary.BigEndian.PutUint64(p[16:24], uint64(sentNs))
}

// readPayload decodes the header; ok is false when the magic is wrong or
// the payload is too short.
func readPayload(p []byte) (pub uint32, seq uint64, sentNs int64, ok bool) {
	if len(p) < payloadHeader || string(p[0:4]) != payloadMagic {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(p[4:8]), binary.BigEndian.Uint64(p[8:16]),
		int64(binary.BigEndian.Uint64(p[16:24])), true
}
