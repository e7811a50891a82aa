package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// swapAuth admits every client with first, through CONNECT or an exchange,
// and a re-authentication with reauth.
type swapAuth struct{ first, reauth *Login }

func (a swapAuth) Authenticate(context.Context, *ClientInfo, []byte) AuthResult {
	return AuthResult{Allow: true, Login: a.first}
}

func (a swapAuth) AuthStep(_ context.Context, _ *ClientInfo, req *AuthStepRequest) AuthExchange {
	l := a.first
	if req.Reauth {
		l = a.reauth
	}
	return AuthExchange{Result: AuthResult{Allow: true, Login: l}}
}

// marked reports whether id's subscription to filter carries a receive
// mark that is in force: made for the client's current Login.
func marked(t *testing.T, tb *testBroker, id, filter string) bool {
	t.Helper()
	s, ok := tb.store.Get(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[filter]
	if !ok || s.client == nil {
		t.Fatalf("session %s: no subscription to %s, or not connected", id, filter)
	}
	return receiveGranted(&s.client.info, sub.cover)
}

// A subscription the grants cover is marked, and deliveries through it
// skip the grant match; a re-authentication whose grants deny part of it
// clears the mark, so those deliveries stop, and marks again for the new
// grants what they still cover. The publisher's remembered
// decision goes with the old grants too.
func TestReauthClearsReceiveMark(t *testing.T) {
	all := ActionSet(0).With(ActionPublish).With(ActionReceive).With(ActionSubscribe)
	first := &Login{Grants: []Grant{NewGrant("g/#", all, true)}}
	reauth := &Login{Grants: []Grant{
		NewGrant("g/secret/#", ActionSet(0).With(ActionReceive), false),
		NewGrant("g/nopub", ActionSet(0).With(ActionPublish), false),
		NewGrant("g/#", all, true),
	}}
	chk := &denyCounter{}
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth, o.Hooks.Topics = swapAuth{first, reauth}, chk })
	c := connectToken(t, tb.addr, "mark-reauth", "hello")
	if ack, ok := c.read(3 * time.Second).(*packets.Connack); !ok || ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %+v", ack)
	}
	c.subscribe(1, "g/#", 0)
	c.subscribe(2, "g/open/#", 0)
	if !marked(t, tb, "mark-reauth", "g/#") {
		t.Fatal("g/# is not marked though the grants allow all of it")
	}
	publish := func(topic string) { c.send(&packets.Publish{Topic: topic, Payload: []byte("x")}) }
	next := func() string { return c.expectPublish(2 * time.Second).Topic }
	publish("g/nopub")
	publish("g/secret/a")
	for _, want := range []string{"g/nopub", "g/secret/a"} {
		if got := next(); got != want {
			t.Fatalf("before re-authentication got %s, want %s", got, want)
		}
	}

	c.send(v5Auth(packets.ReAuthenticate, "again"))
	v5ExpectAuth(c, packets.Success, "")
	if marked(t, tb, "mark-reauth", "g/#") {
		t.Fatal("g/# still marked after the grants began denying g/secret/#")
	}
	if !marked(t, tb, "mark-reauth", "g/open/#") {
		t.Fatal("g/open/# not marked again for the new grants, which still allow all of it")
	}
	publish("g/nopub")    // denied by the new grants, then by the checker
	publish("g/secret/b") // published, its receive denied
	publish("g/open/x")
	if got := next(); got != "g/open/x" {
		t.Fatalf("after re-authentication got %s, want g/open/x", got)
	}
	if p, r := chk.publish.Load(), chk.receive.Load(); p != 1 || r != 1 {
		t.Fatalf("checker asked %d publish and %d receive checks; want 1 and 1", p, r)
	}
}

// A narrower deny before a broad allow leaves the broad subscription
// unmarked, so each delivery through it is still matched and the denied
// ones dropped; a subscription beside the deny is marked, and a message
// matching both is delivered once.
func TestReceiveMarkNarrowDenyBeforeAllow(t *testing.T) {
	all := ActionSet(0).With(ActionPublish).With(ActionReceive).With(ActionSubscribe)
	login := &Login{Grants: []Grant{
		NewGrant("g/secret/#", ActionSet(0).With(ActionReceive), false),
		NewGrant("g/#", all, true),
	}}
	chk := &denyCounter{}
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth, o.Hooks.Topics = loginAuth{login}, chk })
	c := dialRaw(t, tb.addr)
	c.mustConnect("mark-deny", true)
	c.subscribe(1, "g/#", 0)
	c.subscribe(2, "g/open/#", 0)
	if marked(t, tb, "mark-deny", "g/#") {
		t.Fatal("g/# marked though g/secret/# is denied before it")
	}
	if !marked(t, tb, "mark-deny", "g/open/#") {
		t.Fatal("g/open/# not marked though no deny overlaps it")
	}
	publish := func(topic string) { c.send(&packets.Publish{Topic: topic, Payload: []byte("x")}) }
	next := func() string { return c.expectPublish(2 * time.Second).Topic }
	publish("g/secret/x")
	publish("g/open/x")
	publish("g/b")
	for _, want := range []string{"g/open/x", "g/b"} {
		if got := next(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if p, r := chk.publish.Load(), chk.receive.Load(); p != 0 || r != 1 {
		t.Fatalf("checker asked %d publish and %d receive checks; want 0 and 1", p, r)
	}
}
