package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// connectToken sends a CONNECT for the method "TOKEN" with first as its data.
func connectToken(t *testing.T, addr, id, first string) *rawClient {
	c := dialRawV5(t, addr)
	p := &packets.Connect{ProtocolVersion: packets.V5, ClientID: id, CleanStart: true}
	p.Props.AuthMethod = "TOKEN"
	p.Props.AuthData = []byte(first)
	c.send(p)
	return c
}

// An exchange is bounded in steps (limits.auth-exchange-steps) and in time
// (limits.auth-exchange-timeout), during CONNECT and during
// re-authentication; each cut is counted and the client told 0x87.
func TestAuthExchangeBounds(t *testing.T) {
	hook := &v5Challenger{}
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Auth = hook
		o.Limits.AuthExchangeSteps = 2
		o.Limits.AuthExchangeTimeout = 500 * time.Millisecond
	})
	cut := func() int64 { return tb.Stats().AuthExchangesCut }

	// A client that keeps answering with a challenge the hook answers
	// with another ("hello" again): step 3 is over the bound.
	c := connectToken(t, tb.addr, "ex-steps", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.send(v5Auth(packets.ContinueAuthentication, "hello"))
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.send(v5Auth(packets.ContinueAuthentication, "hello"))
	c.expectConnackClose(packets.NotAuthorized)
	if n := cut(); n != 1 {
		t.Fatalf("exchanges cut %d after the step bound, want 1", n)
	}
	if n := len(hook.log()); n != 2 {
		t.Fatalf("the hook was asked %d times, want 2 (never past the bound)", n)
	}

	// A client that stalls after the challenge is cut at the deadline,
	// not at connect-timeout (10 s).
	start := time.Now()
	c = connectToken(t, tb.addr, "ex-stall", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.expectConnackClose(packets.NotAuthorized)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("stalled exchange cut after %v", waited)
	}
	if n := cut(); n != 2 {
		t.Fatalf("exchanges cut %d after a stall, want 2", n)
	}

	// A PUBLISH in the middle of a CONNECT exchange breaks it: 0x82.
	c = connectToken(t, tb.addr, "ex-publish", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.send(&packets.Publish{Topic: "x", Payload: []byte("early")})
	c.expectConnackClose(packets.ProtocolError)

	// Re-authentication that stalls: DISCONNECT 0x87 at the deadline,
	// though the client keeps pinging (other packets may flow meanwhile).
	c = connectToken(t, tb.addr, "ex-reauth", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.send(v5Auth(packets.ContinueAuthentication, "answer-1"))
	if ack, ok := c.read(3 * time.Second).(*packets.Connack); !ok || ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %+v", ack)
	}
	c.send(v5Auth(packets.ReAuthenticate, "again"))
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-2")
	c.send(&packets.Pingreq{})
	if p := c.read(3 * time.Second); p.Type() != packets.PINGRESP {
		t.Fatalf("PINGREQ during re-authentication answered with %v", p.Type())
	}
	c.expectDisconnect(packets.NotAuthorized)
	if n := cut(); n != 3 {
		t.Fatalf("exchanges cut %d after a stalled re-authentication, want 3", n)
	}
}
