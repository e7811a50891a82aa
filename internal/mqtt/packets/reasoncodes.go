package packets

import "strconv"

// ReasonCode is an MQTT 5 reason code, or a 3.1.1 CONNACK/SUBACK return code.
type ReasonCode byte

// MQTT 5 reason codes (spec 2.4). Some values have several names in the
// spec (0x00 is Success, Normal disconnection and Granted QoS 0); the
// constant is named after the most common meaning.
const (
	Success                    ReasonCode = 0x00
	NormalDisconnection        ReasonCode = 0x00
	GrantedQoS0                ReasonCode = 0x00
	GrantedQoS1                ReasonCode = 0x01
	GrantedQoS2                ReasonCode = 0x02
	DisconnectWithWill         ReasonCode = 0x04
	NoMatchingSubscribers      ReasonCode = 0x10
	NoSubscriptionExisted      ReasonCode = 0x11
	ContinueAuthentication     ReasonCode = 0x18
	ReAuthenticate             ReasonCode = 0x19
	UnspecifiedError           ReasonCode = 0x80
	MalformedPacket            ReasonCode = 0x81
	ProtocolError              ReasonCode = 0x82
	ImplementationSpecific     ReasonCode = 0x83
	UnsupportedProtocolVersion ReasonCode = 0x84
	ClientIDNotValid           ReasonCode = 0x85
	BadUsernameOrPassword      ReasonCode = 0x86
	NotAuthorized              ReasonCode = 0x87
	ServerUnavailable          ReasonCode = 0x88
	ServerBusy                 ReasonCode = 0x89
	Banned                     ReasonCode = 0x8A
	ServerShuttingDown         ReasonCode = 0x8B
	BadAuthMethod              ReasonCode = 0x8C
	KeepAliveTimeout           ReasonCode = 0x8D
	SessionTakenOver           ReasonCode = 0x8E
	TopicFilterInvalid         ReasonCode = 0x8F
	TopicNameInvalid           ReasonCode = 0x90
	PacketIDInUse              ReasonCode = 0x91
	PacketIDNotFound           ReasonCode = 0x92
	ReceiveMaxExceeded         ReasonCode = 0x93
	TopicAliasInvalid          ReasonCode = 0x94
	PacketTooLarge             ReasonCode = 0x95
	MessageRateTooHigh         ReasonCode = 0x96
	QuotaExceeded              ReasonCode = 0x97
	AdministrativeAction       ReasonCode = 0x98
	PayloadFormatInvalid       ReasonCode = 0x99
	RetainNotSupported         ReasonCode = 0x9A
	QoSNotSupported            ReasonCode = 0x9B
	UseAnotherServer           ReasonCode = 0x9C
	ServerMoved                ReasonCode = 0x9D
	SharedSubsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded     ReasonCode = 0x9F
	MaxConnectTime             ReasonCode = 0xA0
	SubIDsNotSupported         ReasonCode = 0xA1
	WildcardSubsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1.1 CONNACK return codes (spec 3.2.2.3) and the SUBACK failure code.
const (
	ConnAccepted                     ReasonCode = 0x00
	ConnRefusedProtocolVersion       ReasonCode = 0x01
	ConnRefusedIdentifierRejected    ReasonCode = 0x02
	ConnRefusedServerUnavailable     ReasonCode = 0x03
	ConnRefusedBadUsernameOrPassword ReasonCode = 0x04
	ConnRefusedNotAuthorized         ReasonCode = 0x05
	SubackFailure                    ReasonCode = 0x80
)

var reasonNames = map[ReasonCode]string{
	Success:                    "success",
	GrantedQoS1:                "granted QoS 1",
	GrantedQoS2:                "granted QoS 2",
	DisconnectWithWill:         "disconnect with will message",
	NoMatchingSubscribers:      "no matching subscribers",
	NoSubscriptionExisted:      "no subscription existed",
	ContinueAuthentication:     "continue authentication",
	ReAuthenticate:             "re-authenticate",
	UnspecifiedError:           "unspecified error",
	MalformedPacket:            "malformed packet",
	ProtocolError:              "protocol error",
	ImplementationSpecific:     "implementation specific error",
	UnsupportedProtocolVersion: "unsupported protocol version",
	ClientIDNotValid:           "client identifier not valid",
	BadUsernameOrPassword:      "bad user name or password",
	NotAuthorized:              "not authorized",
	ServerUnavailable:          "server unavailable",
	ServerBusy:                 "server busy",
	Banned:                     "banned",
	ServerShuttingDown:         "server shutting down",
	BadAuthMethod:              "bad authentication method",
	KeepAliveTimeout:           "keep alive timeout",
	SessionTakenOver:           "session taken over",
	TopicFilterInvalid:         "topic filter invalid",
	TopicNameInvalid:           "topic name invalid",
	PacketIDInUse:              "packet identifier in use",
	PacketIDNotFound:           "packet identifier not found",
	ReceiveMaxExceeded:         "receive maximum exceeded",
	TopicAliasInvalid:          "topic alias invalid",
	PacketTooLarge:             "packet too large",
	MessageRateTooHigh:         "message rate too high",
	QuotaExceeded:              "quota exceeded",
	AdministrativeAction:       "administrative action",
	PayloadFormatInvalid:       "payload format invalid",
	RetainNotSupported:         "retain not supported",
	QoSNotSupported:            "QoS not supported",
	UseAnotherServer:           "use another server",
	ServerMoved:                "server moved",
	SharedSubsNotSupported:     "shared subscriptions not supported",
	ConnectionRateExceeded:     "connection rate exceeded",
	MaxConnectTime:             "maximum connect time",
	SubIDsNotSupported:         "subscription identifiers not supported",
	WildcardSubsNotSupported:   "wildcard subscriptions not supported",
}

// String returns the MQTT 5 name of the code. 3.1.1 CONNACK codes 0x03-0x05
// share values with nothing in MQTT 5 and are named as 3.1.1 return codes.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	switch c {
	case ConnRefusedServerUnavailable:
		return "connection refused: server unavailable"
	case ConnRefusedBadUsernameOrPassword:
		return "connection refused: bad user name or password"
	case ConnRefusedNotAuthorized:
		return "connection refused: not authorized"
	}
	return "reason code 0x" + strconv.FormatUint(uint64(c), 16)
}

// ConnackCodeV3 maps an MQTT 5 CONNACK reason code to the nearest 3.1.1
// return code. Codes 0x00-0x05 are taken to be 3.1.1 codes already and are
// returned unchanged.
func ConnackCodeV3(v5 ReasonCode) ReasonCode {
	switch v5 {
	case ConnAccepted, ConnRefusedProtocolVersion, ConnRefusedIdentifierRejected,
		ConnRefusedServerUnavailable, ConnRefusedBadUsernameOrPassword, ConnRefusedNotAuthorized:
		return v5
	case UnsupportedProtocolVersion:
		return ConnRefusedProtocolVersion
	case ClientIDNotValid:
		return ConnRefusedIdentifierRejected
	case ServerUnavailable, ServerBusy:
		return ConnRefusedServerUnavailable
	case BadUsernameOrPassword:
		return ConnRefusedBadUsernameOrPassword
	}
	return ConnRefusedNotAuthorized
}

// codeSet is a set of reason codes, one bit per value.
type codeSet [4]uint64

func newCodeSet(codes ...ReasonCode) codeSet {
	var s codeSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// The reason codes each MQTT 5 packet may carry (spec 2.4 and the reason
// code table of each packet). Anything else is a protocol error.
var (
	connackCodes = newCodeSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecific, UnsupportedProtocolVersion, ClientIDNotValid, BadUsernameOrPassword,
		NotAuthorized, ServerUnavailable, ServerBusy, Banned, BadAuthMethod, TopicNameInvalid,
		PacketTooLarge, QuotaExceeded, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
		UseAnotherServer, ServerMoved, ConnectionRateExceeded)
	pubackCodes = newCodeSet(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecific,
		NotAuthorized, TopicNameInvalid, PacketIDInUse, QuotaExceeded, PayloadFormatInvalid)
	pubrelCodes = newCodeSet(Success, PacketIDNotFound)
	subackCodes = newCodeSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecific, NotAuthorized, TopicFilterInvalid, PacketIDInUse, QuotaExceeded,
		SharedSubsNotSupported, SubIDsNotSupported, WildcardSubsNotSupported)
	subackCodesV3   = newCodeSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, SubackFailure)
	unsubackCodes   = newCodeSet(Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecific, NotAuthorized, TopicFilterInvalid, PacketIDInUse)
	disconnectCodes = newCodeSet(NormalDisconnection, DisconnectWithWill, UnspecifiedError, MalformedPacket,
		ProtocolError, ImplementationSpecific, NotAuthorized, ServerBusy, ServerShuttingDown,
		KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid, TopicNameInvalid, ReceiveMaxExceeded,
		TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh, QuotaExceeded, AdministrativeAction,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		SharedSubsNotSupported, ConnectionRateExceeded, MaxConnectTime, SubIDsNotSupported,
		WildcardSubsNotSupported)
	authCodes = newCodeSet(Success, ContinueAuthentication, ReAuthenticate)
)

// ValidCode reports whether an MQTT 5 packet of type t may carry code (the
// reason code tables of chapter 3). A broker passing on a code it got from
// elsewhere, such as a plugin, checks it here first.
func ValidCode(t Type, code ReasonCode) bool {
	switch t {
	case CONNACK:
		return connackCodes.has(code)
	case PUBACK, PUBREC:
		return pubackCodes.has(code)
	case PUBREL, PUBCOMP:
		return pubrelCodes.has(code)
	case SUBACK:
		return subackCodes.has(code)
	case UNSUBACK:
		return unsubackCodes.has(code)
	case DISCONNECT:
		return disconnectCodes.has(code)
	case AUTH:
		return authCodes.has(code)
	}
	return false
}
