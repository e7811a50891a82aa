package packets

// The reason-code policy for a refusal decided outside the protocol: a
// plugin or authenticator denying a CONNECT, a PUBLISH or a SUBSCRIBE, or
// failing a re-authentication. The decider may name the MQTT 5 reason
// code; the broker passes it on only when the packet it answers with may
// carry it as a failure, and says 0x87 not authorized otherwise, so a
// decider can never make a refusal look like a success or put a code on
// the wire that the client's table does not have.

// ValidDeny reports whether code is a failure code (0x80 and up) that an
// MQTT 5 packet of type t may carry, so a deny may pass it on as given.
func ValidDeny(t Type, code byte) bool {
	rc := ReasonCode(code)
	return rc >= UnspecifiedError && ValidCode(t, rc)
}

// DenyCode is the MQTT 5 reason code a packet of type t carries for a
// deny that came with code: code itself when ValidDeny, else 0x87 not
// authorized.
func DenyCode(t Type, code byte) ReasonCode {
	if ValidDeny(t, code) {
		return ReasonCode(code)
	}
	return NotAuthorized
}

// DenyConnackV3 is the MQTT 3.1.1 CONNACK return code for a CONNECT that
// authentication refused with the MQTT 5 code: 0x04 bad user name or
// password for 0x86, and 0x05 not authorized for every other code. A 3.1.1
// client refused by authentication learns only whether its credentials
// were wrong. ConnackCodeV3, for the broker's own refusals, maps more
// codes (0x88 server unavailable to 0x03, 0x85 client identifier not valid
// to 0x02); an authentication outage or a plugin's quota code is still a
// refusal to authorize here.
func DenyConnackV3(code ReasonCode) ReasonCode {
	if code == BadUsernameOrPassword || code == ConnRefusedBadUsernameOrPassword {
		return ConnRefusedBadUsernameOrPassword
	}
	return ConnRefusedNotAuthorized
}
