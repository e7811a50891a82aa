package packets

import "errors"

// ErrIncomplete reports that b holds only the start of a fixed header: the
// caller should read more bytes and try again. It is not a protocol error.
var ErrIncomplete = errors.New("packets: incomplete fixed header")

// errKind separates errors that share a reason code (a wrong protocol name
// and an unknown protocol level both map to 0x84) so that errors.Is can tell
// them apart: the first closes silently, the second earns a CONNACK.
type errKind uint8

const (
	kindMalformed errKind = iota + 1
	kindProtocol
	kindProtocolName
	kindVersion
	kindTooLarge
)

// Error is a decoding or encoding failure that maps to an MQTT reason code.
// Code is what a v5 peer is told in CONNACK or DISCONNECT; Reason says what
// exactly was wrong, usually with the spec tag it violates.
//
// Errors are matched by kind with errors.Is against the sentinels below, so
// a precise error such as "PUBLISH topic contains a wildcard" still satisfies
// errors.Is(err, ErrMalformed).
type Error struct {
	Code   ReasonCode
	Reason string
	kind   errKind
}

// Error implements error.
func (e *Error) Error() string {
	prefix := "packets: " + e.kindText()
	if e.Reason == "" {
		return prefix
	}
	return prefix + ": " + e.Reason
}

func (e *Error) kindText() string {
	switch e.kind {
	case kindMalformed:
		return "malformed packet"
	case kindProtocol:
		return "protocol error"
	case kindProtocolName:
		return "wrong protocol name"
	case kindVersion:
		return "unsupported protocol version"
	case kindTooLarge:
		return "packet too large"
	}
	return e.Code.String()
}

// Is reports whether target is an *Error of the same kind, which is what
// makes the sentinels work with errors.Is whatever the Reason says, and
// whatever more precise Code an error carries (a topic alias of 0 is a
// protocol error whose code is 0x94, Topic Alias invalid).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.kind == e.kind
}

// Sentinels for errors.Is. The errors actually returned carry a more precise
// Reason; compare with errors.Is, never with ==.
var (
	// ErrMalformed is a packet that cannot be parsed as the spec says (0x81).
	ErrMalformed = &Error{Code: MalformedPacket, kind: kindMalformed}
	// ErrProtocolError is a packet that parses but breaks a protocol rule (0x82).
	ErrProtocolError = &Error{Code: ProtocolError, kind: kindProtocol}
	// ErrProtocolName is a CONNECT whose protocol name is neither "MQTT" nor
	// "MQIsdp": the server closes the connection without a CONNACK
	// ([MQTT-3.1.2-1]). Its Code is 0x84 for a v5 server that chooses to answer.
	ErrProtocolName = &Error{Code: UnsupportedProtocolVersion, kind: kindProtocolName}
	// ErrUnsupportedVersion is a CONNECT with a protocol level this codec does
	// not speak: the server answers CONNACK 0x01 (3.1.1) or 0x84 (v5) and
	// closes ([MQTT-3.1.2-2]).
	ErrUnsupportedVersion = &Error{Code: UnsupportedProtocolVersion, kind: kindVersion}
	// ErrPacketTooLarge is a packet above the allowed maximum size (0x95).
	ErrPacketTooLarge = &Error{Code: PacketTooLarge, kind: kindTooLarge}
)

// CodeOf returns the reason code carried by err: Success for nil, the Code
// of an *Error anywhere in the chain, UnspecifiedError otherwise.
func CodeOf(err error) ReasonCode {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}

// malformed builds a malformed-packet error. Only the error path allocates.
func malformed(reason string) *Error {
	return &Error{Code: MalformedPacket, Reason: reason, kind: kindMalformed}
}

// protocolErr builds a protocol error.
func protocolErr(reason string) *Error {
	return &Error{Code: ProtocolError, Reason: reason, kind: kindProtocol}
}

// tooLarge builds a packet-too-large error.
func tooLarge(reason string) *Error {
	return &Error{Code: PacketTooLarge, Reason: reason, kind: kindTooLarge}
}
