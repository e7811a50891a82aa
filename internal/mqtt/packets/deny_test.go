package packets

import "testing"

// A deny's code goes through only when it is a failure code the answering
// packet's table has; anything else, success codes included, becomes 0x87.
func TestDenyCode(t *testing.T) {
	for _, c := range []struct {
		t    Type
		code byte
		want ReasonCode
	}{
		{CONNACK, 0x97, QuotaExceeded},         // a failure CONNACK may carry
		{CONNACK, 0x86, BadUsernameOrPassword}, // likewise
		{CONNACK, 0x88, ServerUnavailable},     // likewise
		{CONNACK, 0x00, NotAuthorized},         // success: a deny never reads as one
		{CONNACK, 0x04, NotAuthorized},         // a 3.1.1 return code is not an MQTT 5 code
		{CONNACK, 0x8F, NotAuthorized},         // topic filter invalid: not in CONNACK's table
		{CONNACK, 0xFF, NotAuthorized},         // no such code
		{PUBACK, 0x97, QuotaExceeded},          // in PUBACK's table
		{PUBACK, 0x90, TopicNameInvalid},       // likewise
		{PUBACK, 0x10, NotAuthorized},          // no matching subscribers: valid, but no failure
		{PUBACK, 0x86, NotAuthorized},          // a CONNACK code
		{PUBREC, 0x97, QuotaExceeded},          // PUBREC shares PUBACK's table
		{SUBACK, 0x97, QuotaExceeded},          // in SUBACK's table
		{SUBACK, 0x02, NotAuthorized},          // granted QoS 2
		{SUBACK, 0x90, NotAuthorized},          // topic name invalid: a PUBACK code
		{DISCONNECT, 0x87, NotAuthorized},      // re-authentication refused
		{DISCONNECT, 0x8A, NotAuthorized},      // banned: CONNACK only
		{DISCONNECT, 0x97, QuotaExceeded},      // in DISCONNECT's table
		{DISCONNECT, 0x04, NotAuthorized},      // disconnect with will: no failure
		{Type(0), 0x87, NotAuthorized},         // a packet with no table
		{CONNACK, byte(UnspecifiedError), UnspecifiedError},
	} {
		if got := DenyCode(c.t, c.code); got != c.want {
			t.Errorf("DenyCode(%v, %#x) = %v, want %v", c.t, c.code, got, c.want)
		}
	}
}

// Over every byte, for each packet a deny answers with (all of them have
// 0x87 in their table), DenyCode gives a failure code that packet may
// carry: the code as given exactly when ValidDeny, else 0x87.
func TestDenyCodeAlwaysAFailureThePacketCarries(t *testing.T) {
	for _, ty := range []Type{CONNACK, PUBACK, PUBREC, SUBACK, DISCONNECT} {
		for code := range 256 {
			got := DenyCode(ty, byte(code))
			if got < UnspecifiedError || !ValidCode(ty, got) {
				t.Fatalf("DenyCode(%v, %#x) = %v: not a failure %v may carry", ty, code, got, ty)
			}
			if want := map[bool]ReasonCode{true: ReasonCode(code), false: NotAuthorized}[ValidDeny(ty, byte(code))]; got != want {
				t.Fatalf("DenyCode(%v, %#x) = %v, want %v (ValidDeny %v)", ty, code, got, want, ValidDeny(ty, byte(code)))
			}
		}
	}
}

// A 3.1.1 client refused by authentication hears 0x04 for bad credentials
// and 0x05 for everything else, where the broker's own refusals map more
// finely.
func TestDenyConnackV3(t *testing.T) {
	for _, c := range []struct{ in, want, own ReasonCode }{
		{BadUsernameOrPassword, ConnRefusedBadUsernameOrPassword, ConnRefusedBadUsernameOrPassword},
		{ConnRefusedBadUsernameOrPassword, ConnRefusedBadUsernameOrPassword, ConnRefusedBadUsernameOrPassword},
		{NotAuthorized, ConnRefusedNotAuthorized, ConnRefusedNotAuthorized},
		{ServerUnavailable, ConnRefusedNotAuthorized, ConnRefusedServerUnavailable},
		{ClientIDNotValid, ConnRefusedNotAuthorized, ConnRefusedIdentifierRejected},
		{QuotaExceeded, ConnRefusedNotAuthorized, ConnRefusedNotAuthorized},
		{Banned, ConnRefusedNotAuthorized, ConnRefusedNotAuthorized},
	} {
		if got := DenyConnackV3(c.in); got != c.want {
			t.Errorf("DenyConnackV3(%v) = %#x, want %#x", c.in, byte(got), byte(c.want))
		}
		if got := ConnackCodeV3(c.in); got != c.own {
			t.Errorf("ConnackCodeV3(%v) = %#x, want %#x (the broker's own refusals)", c.in, byte(got), byte(c.own))
		}
	}
}
