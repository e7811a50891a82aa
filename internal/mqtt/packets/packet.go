// Package packets encodes and decodes MQTT control packets for versions
// 3.1, 3.1.1 and 5.0.
//
// There is one struct per packet type. Decode methods parse a body whose
// fixed header has already been read (see DecodeFixedHeader) and make every
// check a server must make before acting on a packet; Append methods encode
// a whole packet onto a caller's buffer. The hot-path packets (PUBLISH, its
// acknowledgements, PINGREQ) decode into a reused struct and encode into a
// buffer with spare capacity without allocating.
//
// Decoded strings and byte slices alias the body they were parsed from:
// a caller that keeps them beyond the life of that buffer must copy them.
// Checks that need connection state or the direction of a packet are left
// to the broker: client identifier rules, topic alias ranges, a Subscription
// Identifier in a PUBLISH sent by a client ([MQTT5-3.3.4-6]), filter syntax
// (answered per filter in SUBACK), AUTH on a connection that is not MQTT 5.
//
// Errors are *Error values carrying the reason code to report; match them
// with errors.Is against ErrMalformed, ErrProtocolError and the others.
// Comments name the normative statement a check implements: [MQTT-3.3.1-4]
// is a statement of MQTT 3.1.1, [MQTT5-3.3.1-4] one of MQTT 5.0 (the two
// specifications number some rules differently and reuse numbers for
// different rules). A check both versions share is cited by its 3.1.1 tag
// when the numbers agree, by both tags when they differ; a rule the
// specification states without a tag is cited by section (5.0 §3.2.2.3.2).
package packets

import (
	"io"
	"strconv"
)

// Type is an MQTT control packet type, the high nibble of the first byte.
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5 only
)

var typeNames = [16]string{
	"", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the spec spells it.
func (t Type) String() string {
	if t < 16 && typeNames[t] != "" {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Version is an MQTT protocol level as carried in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// String returns the version as people write it ("3.1.1").
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// Packet is one MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// Append appends the whole packet (fixed header included), encoded for
	// version v. Fields that only exist in MQTT 5 are ignored for V31 and V311.
	Append(dst []byte, v Version) ([]byte, error)
	// Decode parses a body of exactly fh.Remaining bytes for version v,
	// making every check a server must make. Strings and []byte fields alias
	// body; callers that keep them must copy.
	Decode(fh FixedHeader, body []byte, v Version) error
}

// New returns a zero packet of type t, or nil if t is not a packet type.
func New(t Type) Packet {
	switch t {
	case CONNECT:
		return new(Connect)
	case CONNACK:
		return new(Connack)
	case PUBLISH:
		return new(Publish)
	case PUBACK:
		return new(Puback)
	case PUBREC:
		return new(Pubrec)
	case PUBREL:
		return new(Pubrel)
	case PUBCOMP:
		return new(Pubcomp)
	case SUBSCRIBE:
		return new(Subscribe)
	case SUBACK:
		return new(Suback)
	case UNSUBSCRIBE:
		return new(Unsubscribe)
	case UNSUBACK:
		return new(Unsuback)
	case PINGREQ:
		return new(Pingreq)
	case PINGRESP:
		return new(Pingresp)
	case DISCONNECT:
		return new(Disconnect)
	case AUTH:
		return new(Auth)
	}
	return nil
}

// Decode allocates a packet of type fh.Type and decodes body into it. It is
// meant for tests and rare packets; the hot path decodes into reused structs.
// The result aliases body like every Decode method.
func Decode(fh FixedHeader, body []byte, v Version) (Packet, error) {
	p := New(fh.Type)
	if p == nil {
		return nil, malformed(fh.Type.String() + " is not a packet type")
	}
	if err := p.Decode(fh, body, v); err != nil {
		return nil, err
	}
	return p, nil
}

// ReadPacket reads one whole packet from r and decodes it for version v.
// A packet larger than maxSize bytes in total (fixed header included) gives
// ErrPacketTooLarge before its body is read; maxSize <= 0 means no limit
// beyond the protocol's own. The body is read into a fresh buffer, so the
// packet aliases nothing the caller reuses. It is meant for tests and
// clients; the broker frames packets itself.
func ReadPacket(r io.Reader, v Version, maxSize int) (Packet, error) {
	var hdr [5]byte
	n := 0
	for {
		if _, err := io.ReadFull(r, hdr[n:n+1]); err != nil {
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n++
		fh, hn, err := DecodeFixedHeader(hdr[:n])
		if err == ErrIncomplete {
			continue
		}
		if err != nil {
			return nil, err
		}
		if maxSize > 0 && hn+fh.Remaining > maxSize {
			return nil, tooLarge(fh.Type.String() + " of " + strconv.Itoa(hn+fh.Remaining) +
				" bytes exceeds the limit of " + strconv.Itoa(maxSize))
		}
		body := make([]byte, fh.Remaining)
		if _, err := io.ReadFull(r, body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return Decode(fh, body, v)
	}
}

// begin makes the checks every Decode method shares: the fixed header is of
// the expected type with valid flags, and body has the length it announces.
func begin(fh FixedHeader, body []byte, t Type) error {
	if fh.Type != t {
		return malformed("a " + fh.Type.String() + " header was given to " + t.String() + ".Decode")
	}
	if err := checkFlags(t, fh.Flags); err != nil {
		return err
	}
	if len(body) != fh.Remaining {
		return malformed(t.String() + " body length differs from the remaining length")
	}
	return nil
}

// header appends the fixed header and reports an oversize packet; rem is the
// remaining length the caller computed.
func header(dst []byte, t Type, flags byte, rem int) ([]byte, error) {
	if rem > MaxVarInt {
		return dst, tooLarge(t.String() + " exceeds the largest remaining length")
	}
	return AppendFixedHeader(dst, FixedHeader{Type: t, Flags: flags, Remaining: rem}), nil
}
