package mqtt

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// v5Challenger is an Authenticator that also drives MQTT 5 enhanced
// authentication for the method "TOKEN":
//
//	CONNECT "hello"  → challenge "challenge-1"; "answer-1" → allowed ("welcome")
//	re-auth "again"  → challenge "challenge-2"; "answer-2" → allowed
//	"banned"         → denied with 0x8A; anything else → denied, no code
type v5Challenger struct {
	mu    sync.Mutex
	steps []v5Step
}

type v5Step struct {
	client, method, data string
	reauth               bool
}

func (a *v5Challenger) Authenticate(context.Context, *ClientInfo, []byte) AuthResult {
	return AuthResult{Allow: true}
}

func (a *v5Challenger) AuthStep(_ context.Context, c *ClientInfo, req *AuthStepRequest) AuthExchange {
	a.mu.Lock()
	a.steps = append(a.steps, v5Step{c.ClientID, req.Method, string(req.Data), req.Reauth})
	a.mu.Unlock()
	reauth := req.Reauth
	switch d := string(req.Data); {
	case !reauth && d == "hello":
		return AuthExchange{Continue: true, Data: []byte("challenge-1")}
	case !reauth && d == "answer-1":
		return AuthExchange{Data: []byte("welcome"), Result: AuthResult{Allow: true}}
	case reauth && d == "again":
		return AuthExchange{Continue: true, Data: []byte("challenge-2")}
	case reauth && d == "answer-2":
		return AuthExchange{Result: AuthResult{Allow: true}}
	case d == "banned":
		return AuthExchange{Result: AuthResult{ReasonCode: 0x8A, Reason: "banned"}}
	}
	return AuthExchange{Result: AuthResult{Reason: "wrong answer"}}
}

func (a *v5Challenger) log() []v5Step {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]v5Step(nil), a.steps...)
}

// v5Auth builds an AUTH packet for the method "TOKEN".
func v5Auth(code packets.ReasonCode, data string) *packets.Auth {
	a := &packets.Auth{ReasonCode: code}
	a.Props.AuthMethod = "TOKEN"
	a.Props.AuthData = []byte(data)
	return a
}

// v5ExpectAuth reads an AUTH with the given reason code (and, when data is
// not empty, authentication data) for the method "TOKEN".
func v5ExpectAuth(c *rawClient, code packets.ReasonCode, data string) *packets.Auth {
	c.t.Helper()
	p := c.read(2 * time.Second)
	a, ok := p.(*packets.Auth)
	if !ok {
		c.t.Fatalf("expected AUTH %v, got %v %+v", code, p.Type(), p)
	}
	if a.ReasonCode != code || a.Props.AuthMethod != "TOKEN" || (data != "" && string(a.Props.AuthData) != data) {
		c.t.Fatalf("AUTH %v method %q data %q, want %v TOKEN %q", a.ReasonCode, a.Props.AuthMethod, a.Props.AuthData, code, data)
	}
	return a
}

// Enhanced authentication (5.0 §4.12) over a raw socket, byte-exact:
// CONNECT with an Authentication Method → AUTH 0x18 with the hook's
// challenge → the client's AUTH 0x18 → CONNACK success carrying the method
// and the hook's final data. Then re-authentication (5.0 §4.12.1): AUTH
// 0x19 → AUTH 0x18 → AUTH 0x18 → AUTH 0x00, the connection carrying on; a
// failed re-authentication ends it with DISCONNECT and the hook's code.
func TestV5EnhancedAuth(t *testing.T) {
	hook := &v5Challenger{}
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = hook })
	connect := func(id, first string) *rawClient {
		c := dialRawV5(t, tb.addr)
		p := &packets.Connect{ProtocolVersion: packets.V5, ClientID: id, CleanStart: true, KeepAlive: 30}
		p.Props.AuthMethod = "TOKEN"
		p.Props.AuthData = []byte(first)
		c.send(p)
		return c
	}

	c := connect("v5-ea", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	c.send(v5Auth(packets.ContinueAuthentication, "answer-1"))
	p := c.read(2 * time.Second)
	ack, ok := p.(*packets.Connack)
	if !ok || ack.ReasonCode != packets.Success {
		t.Fatalf("after the exchange: %v %+v, want CONNACK success", p.Type(), p)
	}
	if ack.Props.AuthMethod != "TOKEN" || string(ack.Props.AuthData) != "welcome" {
		t.Fatalf("CONNACK Authentication Method %q Data %q, want TOKEN welcome", ack.Props.AuthMethod, ack.Props.AuthData)
	}
	steps := hook.log()
	if len(steps) != 2 || steps[0] != (v5Step{"v5-ea", "TOKEN", "hello", false}) || steps[1] != (v5Step{"v5-ea", "TOKEN", "answer-1", false}) {
		t.Fatalf("AuthStep calls %+v", steps)
	}

	// Re-authentication, two steps.
	c.send(v5Auth(packets.ReAuthenticate, "again"))
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-2")
	c.send(v5Auth(packets.ContinueAuthentication, "answer-2"))
	v5ExpectAuth(c, packets.Success, "")
	if steps := hook.log(); len(steps) != 4 || !steps[2].reauth || !steps[3].reauth {
		t.Fatalf("re-authentication AuthStep calls %+v", steps)
	}
	c.send(&packets.Pingreq{})
	if p := c.read(2 * time.Second); p.Type() != packets.PINGRESP {
		t.Fatalf("after re-authentication: %v", p.Type())
	}

	// A failed re-authentication: DISCONNECT with the hook's code (none
	// given → 0x87).
	c.send(v5Auth(packets.ReAuthenticate, "stale"))
	c.expectDisconnect(packets.NotAuthorized)

	// A wrong answer during CONNECT: CONNACK 0x87, closed; the hook's own
	// code when it gives one.
	for _, tc := range []struct {
		answer string
		code   packets.ReasonCode
	}{{"wrong", packets.NotAuthorized}, {"banned", packets.Banned}} {
		rejected := tb.Stats().AuthRejected
		c := connect("v5-ea-"+tc.answer, "hello")
		v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
		c.send(v5Auth(packets.ContinueAuthentication, tc.answer))
		c.expectConnackClose(tc.code)
		if tb.Stats().AuthRejected != rejected+1 {
			t.Errorf("%s: AuthRejected not counted", tc.answer)
		}
	}

	// Answering the challenge with another method breaks the exchange.
	c = connect("v5-ea-other", "hello")
	v5ExpectAuth(c, packets.ContinueAuthentication, "challenge-1")
	other := v5Auth(packets.ContinueAuthentication, "answer-1")
	other.Props.AuthMethod = "OTHER"
	c.send(other)
	c.expectConnackClose(packets.ProtocolError)

	// AUTH on a connection that did not authenticate with a method is a
	// protocol error.
	plain, _ := mustConnectV5(t, tb.addr, "v5-ea-plain", true, 0)
	plain.send(v5Auth(packets.ReAuthenticate, "again"))
	plain.expectDisconnect(packets.ProtocolError)
}

// A CONNECT naming an Authentication Method the broker cannot drive — its
// Authenticator is no AuthExchanger, or there is none — is refused with
// CONNACK 0x8C "bad authentication method" ([MQTT5-4.12.0-1]).
func TestV5AuthMethodUnsupported(t *testing.T) {
	plainAuth := authFunc(func(context.Context, *ClientInfo, []byte) AuthResult { return AuthResult{Allow: true} })
	for name, hook := range map[string]Authenticator{"plain authenticator": plainAuth, "no authenticator": nil} {
		t.Run(name, func(t *testing.T) {
			tb := startBroker(t, func(o *Options) { o.Hooks.Auth = hook })
			c := dialRawV5(t, tb.addr)
			p := &packets.Connect{ProtocolVersion: packets.V5, ClientID: "v5-am", CleanStart: true}
			p.Props.AuthMethod = "SCRAM-SHA-1"
			c.send(p)
			c.expectConnackClose(packets.BadAuthMethod)
			// The same client without a method is let in.
			if _, ack := mustConnectV5(t, tb.addr, "v5-am", true, 0); ack.Props.Has(packets.PropAuthMethod) {
				t.Errorf("CONNACK carries Authentication Method %q for a client that gave none", ack.Props.AuthMethod)
			}
		})
	}
}

// v5PahoAuther answers the broker's challenges the way v5Challenger
// expects, for paho.golang's AuthHandler.
type v5PahoAuther struct {
	mu            sync.Mutex
	challenges    []string
	authenticated chan struct{}
}

func (a *v5PahoAuther) Authenticate(in *pahov5.Auth) *pahov5.Auth {
	a.mu.Lock()
	a.challenges = append(a.challenges, string(in.Properties.AuthData))
	a.mu.Unlock()
	answer := strings.Replace(string(in.Properties.AuthData), "challenge", "answer", 1)
	return &pahov5.Auth{ReasonCode: 0x18, Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte(answer)}}
}

func (a *v5PahoAuther) Authenticated() {
	select {
	case a.authenticated <- struct{}{}:
	default:
	}
}

// The same exchange with a real MQTT 5 client: paho.golang authenticates
// through its AuthHandler, then re-authenticates with Client.Authenticate,
// and the session keeps working.
func TestV5EnhancedAuthPaho(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = &v5Challenger{} })
	auther := &v5PahoAuther{authenticated: make(chan struct{}, 4)}
	cp := &pahov5.Connect{ClientID: "v5-ea-paho", CleanStart: true,
		Properties: &pahov5.ConnectProperties{AuthMethod: "TOKEN", AuthData: []byte("hello"), RequestProblemInfo: true}}
	c := pahoV5(t, tb.addr, cp, func(cfg *pahov5.ClientConfig) { cfg.AuthHandler = auther })
	if c.ack.Properties.AuthMethod != "TOKEN" || string(c.ack.Properties.AuthData) != "welcome" {
		t.Fatalf("CONNACK method %q data %q", c.ack.Properties.AuthMethod, c.ack.Properties.AuthData)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Authenticate(ctx, &pahov5.Auth{ReasonCode: 0x19,
		Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte("again")}})
	if err != nil || !resp.Success || resp.ReasonCode != 0 {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	auther.mu.Lock()
	got := strings.Join(auther.challenges, ",")
	auther.mu.Unlock()
	if got != "challenge-1,challenge-2" {
		t.Fatalf("challenges seen by the client: %s", got)
	}
	c.sub(0, pahov5.SubscribeOptions{Topic: "v5/ea/echo", QoS: 1})
	c.pub(&pahov5.Publish{Topic: "v5/ea/echo", QoS: 1, Payload: []byte("after re-auth")})
	if m := c.recv(3 * time.Second); string(m.Payload) != "after re-auth" {
		t.Fatalf("payload %q", m.Payload)
	}
}

// A denying Authenticator's reason code reaches a v5 client as-is in the
// CONNACK, with its reason string (docs/design.md §3.2): 0x86 bad user name or
// password, 0x88 server unavailable / 0x89 server busy (what a plugin that
// is down yields), 0x8A banned; no code → 0x87. paho.golang sees the same.
func TestV5AuthenticateReasonCodes(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Auth = authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
			switch c.Username {
			case "badpw":
				return AuthResult{ReasonCode: 0x86, Reason: "bad password"}
			case "down":
				return AuthResult{ReasonCode: 0x88, Reason: "auth plugin unavailable"}
			case "banned":
				return AuthResult{ReasonCode: 0x8A, Reason: "banned"}
			case "busy":
				return AuthResult{ReasonCode: 0x89, Reason: "auth plugin overloaded"}
			case "nocode":
				return AuthResult{Reason: "no"}
			}
			return AuthResult{Allow: true}
		})
	})
	for _, tc := range []struct {
		user   string
		code   packets.ReasonCode
		reason string
	}{
		{"badpw", packets.BadUsernameOrPassword, "bad password"},
		{"down", packets.ServerUnavailable, "auth plugin unavailable"},
		{"banned", packets.Banned, "banned"},
		{"busy", packets.ServerBusy, "auth plugin overloaded"},
		{"nocode", packets.NotAuthorized, "no"},
	} {
		c := dialRawV5(t, tb.addr)
		c.send(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "v5-deny-" + tc.user, CleanStart: true,
			Username: tc.user, Password: []byte("pw")})
		ack := c.expectConnackClose(tc.code)
		if ack.SessionPresent || ack.Props.ReasonString != tc.reason {
			t.Errorf("%s: session present %v, reason string %q, want %q", tc.user, ack.SessionPresent, ack.Props.ReasonString, tc.reason)
		}
		if _, ok := tb.store.Get("v5-deny-" + tc.user); ok {
			t.Errorf("%s: refused client left a session", tc.user)
		}
	}

	pc, err := tryPahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-deny-paho", CleanStart: true,
		Username: "badpw", UsernameFlag: true, Password: []byte("x"), PasswordFlag: true}, nil)
	if err == nil || pc.ack == nil || pc.ack.ReasonCode != 0x86 || pc.ack.Properties.ReasonString != "bad password" {
		t.Fatalf("paho: err %v, CONNACK %+v", err, pc.ack)
	}
	pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-allowed", CleanStart: true, Username: "ok", UsernameFlag: true}, nil)
}

// Topic hook denials carry reason codes (docs/design.md §3.2): SUBSCRIBE → SUBACK
// 0x87 in the denied slot only; PUBLISH → PUBACK (QoS 1) or PUBREC (QoS 2)
// 0x87, or the hook's own failure code, and the message is not routed.
func TestV5TopicCheckReasonCodes(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Topics = topicFunc(func(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
			switch {
			case strings.HasPrefix(r.Topic, "deny/"):
				return TopicResult{Reason: "no access"}
			case strings.HasPrefix(r.Topic, "quota/") && r.Action == ActionPublish:
				return TopicResult{ReasonCode: 0x97, Reason: "quota"}
			}
			return TopicResult{Allow: true}
		})
	})
	sub, _ := mustConnectV5(t, tb.addr, "v5-tc-sub", true, 0)
	codes := sub.subscribeOpts(1, 0,
		packets.Subscription{Filter: "ok/t", QoS: 1},
		packets.Subscription{Filter: "deny/t", QoS: 1},
		packets.Subscription{Filter: "quota/#", QoS: 2},
		packets.Subscription{Filter: "#", QoS: 0})
	want := []packets.ReasonCode{packets.GrantedQoS1, packets.NotAuthorized, packets.GrantedQoS2, packets.GrantedQoS0}
	if len(codes) != len(want) {
		t.Fatalf("SUBACK %v, want %v", codes, want)
	}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("SUBACK %v, want %v", codes, want)
		}
	}

	pub, _ := mustConnectV5(t, tb.addr, "v5-tc-pub", true, 0)
	pub.send(&packets.Publish{Topic: "deny/t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if a := pub.expect(packets.PUBACK, 1).(*packets.Puback); a.ReasonCode != packets.NotAuthorized || a.Props.ReasonString != "no access" {
		t.Errorf("denied QoS 1: PUBACK %v %q", a.ReasonCode, a.Props.ReasonString)
	}
	pub.send(&packets.Publish{Topic: "deny/t", QoS: 2, PacketID: 2, Payload: []byte("x")})
	if a := pub.expect(packets.PUBREC, 2).(*packets.Pubrec); a.ReasonCode != packets.NotAuthorized {
		t.Errorf("denied QoS 2: PUBREC %v", a.ReasonCode)
	}
	pub.send(&packets.Publish{Topic: "quota/t", QoS: 1, PacketID: 3, Payload: []byte("x")})
	if a := pub.expect(packets.PUBACK, 3).(*packets.Puback); a.ReasonCode != packets.QuotaExceeded || a.Props.ReasonString != "quota" {
		t.Errorf("hook code 0x97: PUBACK %v %q", a.ReasonCode, a.Props.ReasonString)
	}
	sub.expectNothing(300 * time.Millisecond) // none of the denied messages was routed

	pub.send(&packets.Publish{Topic: "ok/t", QoS: 1, PacketID: 4, Payload: []byte("fine")})
	if a := pub.expect(packets.PUBACK, 4).(*packets.Puback); a.ReasonCode != packets.Success {
		t.Errorf("allowed publish: PUBACK %v", a.ReasonCode)
	}
	if m := sub.expectPublish(2 * time.Second); m.Topic != "ok/t" || string(m.Payload) != "fine" {
		t.Fatalf("delivered %s %q", m.Topic, m.Payload)
	}
}

// A v5 QoS 1 or 2 publish that no subscription matches is acknowledged
// with 0x10 "no matching subscribers" (PUBACK; PUBREC for QoS 2, whose flow
// then completes normally); once one matches, with 0x00.
func TestV5NoMatchingSubscribers(t *testing.T) {
	tb := startBroker(t, nil)
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-nms", CleanStart: true}, nil)
	if r := pc.pub(&pahov5.Publish{Topic: "v5/nobody", QoS: 1, Payload: []byte("x")}); r.ReasonCode != 0x10 {
		t.Errorf("QoS 1 to nobody: PUBACK %#x, want 0x10", r.ReasonCode)
	}
	raw, _ := mustConnectV5(t, tb.addr, "v5-nms-raw", true, 0)
	raw.send(&packets.Publish{Topic: "v5/nobody", QoS: 2, PacketID: 9, Payload: []byte("x")})
	if a := raw.expect(packets.PUBREC, 9).(*packets.Pubrec); a.ReasonCode != packets.NoMatchingSubscribers {
		t.Errorf("QoS 2 to nobody: PUBREC %v, want 0x10", a.ReasonCode)
	}
	raw.send(&packets.Pubrel{PacketID: 9})
	if a := raw.expect(packets.PUBCOMP, 9).(*packets.Pubcomp); a.ReasonCode != packets.Success {
		t.Errorf("PUBCOMP %v", a.ReasonCode)
	}

	pc.sub(0, pahov5.SubscribeOptions{Topic: "v5/nobody", QoS: 2})
	if r := pc.pub(&pahov5.Publish{Topic: "v5/nobody", QoS: 1, Payload: []byte("x")}); r.ReasonCode != 0 {
		t.Errorf("QoS 1 with a subscriber: PUBACK %#x, want 0", r.ReasonCode)
	}
	raw.send(&packets.Publish{Topic: "v5/nobody", QoS: 2, PacketID: 10, Payload: []byte("x")})
	if a := raw.expect(packets.PUBREC, 10).(*packets.Pubrec); a.ReasonCode != packets.Success {
		t.Errorf("QoS 2 with a subscriber: PUBREC %v, want 0", a.ReasonCode)
	}
}

// A hook's reason code reaches the client only when it is valid for the
// packet carrying it (docs/design.md §3.2: the plugin's code when valid,
// else 0x87): a code that CONNACK, SUBACK or PUBACK may not
// carry (0x8E session taken over, 0x94 topic alias invalid, unassigned
// 0xFF) becomes 0x87, so the client never receives a malformed packet.
func TestV5HookInvalidReasonCodes(t *testing.T) {
	code := func(name string) byte {
		switch name {
		case "x8e":
			return 0x8E
		case "x94":
			return 0x94
		case "xff":
			return 0xFF
		}
		return 0
	}
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Auth = authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
			if c.Username == "ok" {
				return AuthResult{Allow: true}
			}
			return AuthResult{ReasonCode: code(c.Username), Reason: "denied"}
		})
		o.Hooks.Topics = topicFunc(func(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
			if name, ok := strings.CutPrefix(r.Topic, "deny/"); ok {
				return TopicResult{ReasonCode: code(name), Reason: "denied"}
			}
			return TopicResult{Allow: true}
		})
	})
	for _, name := range []string{"x8e", "x94", "xff"} {
		t.Run(name+"/CONNACK", func(t *testing.T) {
			c := dialRawV5(t, tb.addr)
			c.send(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "v5-badcode", CleanStart: true, Username: name})
			c.expectConnackClose(packets.NotAuthorized)
		})
		t.Run(name+"/SUBACK", func(t *testing.T) {
			c := dialRawV5(t, tb.addr)
			if ack := c.connectWith(&packets.Connect{ClientID: "v5-badcode", CleanStart: true, Username: "ok"}); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			if codes := c.subscribeOpts(1, 0, packets.Subscription{Filter: "deny/" + name, QoS: 1}); len(codes) != 1 || codes[0] != packets.NotAuthorized {
				t.Errorf("SUBACK %v, want [0x87]", codes)
			}
		})
		t.Run(name+"/PUBACK", func(t *testing.T) {
			c := dialRawV5(t, tb.addr)
			if ack := c.connectWith(&packets.Connect{ClientID: "v5-badcode", CleanStart: true, Username: "ok"}); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			c.send(&packets.Publish{Topic: "deny/" + name, QoS: 1, PacketID: 2, Payload: []byte("x")})
			if a := c.expect(packets.PUBACK, 2).(*packets.Puback); a.ReasonCode != packets.NotAuthorized {
				t.Errorf("PUBACK %v, want 0x87", a.ReasonCode)
			}
		})
	}
}
