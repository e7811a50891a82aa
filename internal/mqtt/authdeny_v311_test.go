package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// An Authenticator's refusal reaches a 3.1.1 client as 0x04 bad user name
// or password when it says bad credentials (0x86), and as 0x05 not
// authorized for every other code, outages and quotas included: a refused
// 3.1.1 client learns only whether its credentials were wrong. The broker's
// own refusals map more codes (0x88 to 0x03); an authenticator's do not.
func TestV311AuthenticateDenyCodes(t *testing.T) {
	auth := authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
		switch c.Username {
		case "badpw":
			return AuthResult{ReasonCode: 0x86, Reason: "bad password"}
		case "down":
			return AuthResult{ReasonCode: 0x88, Reason: "auth plugin unavailable"}
		case "busy":
			return AuthResult{ReasonCode: 0x89, Reason: "auth plugin overloaded"}
		case "badid":
			return AuthResult{ReasonCode: 0x85, Reason: "no such device"}
		case "quota":
			return AuthResult{ReasonCode: 0x97, Reason: "too many logins"}
		case "banned":
			return AuthResult{ReasonCode: 0x8A, Reason: "banned"}
		case "nocode":
			return AuthResult{Reason: "no"}
		}
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	for _, tc := range []struct {
		user string
		want packets.ReasonCode
	}{
		{"badpw", packets.ConnRefusedBadUsernameOrPassword},
		{"down", packets.ConnRefusedNotAuthorized},
		{"busy", packets.ConnRefusedNotAuthorized},
		{"badid", packets.ConnRefusedNotAuthorized},
		{"quota", packets.ConnRefusedNotAuthorized},
		{"banned", packets.ConnRefusedNotAuthorized},
		{"nocode", packets.ConnRefusedNotAuthorized},
	} {
		c := dialRaw(t, tb.addr)
		c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V311, ClientID: "v3-deny-" + tc.user,
			CleanStart: true, UsernameFlag: true, Username: tc.user, PasswordFlag: true, Password: []byte("pw")})
		ack, ok := c.read(5 * time.Second).(*packets.Connack)
		if !ok || ack.ReasonCode != tc.want || ack.SessionPresent {
			t.Errorf("%s: CONNACK %+v, want return code %#x with session present 0", tc.user, ack, byte(tc.want))
		}
		c.expectClosed(5 * time.Second)
	}
}
