package mqtt

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// loginAuth accepts every client with the same Login.
type loginAuth struct{ login *Login }

func (a loginAuth) Authenticate(context.Context, *ClientInfo, []byte) AuthResult {
	return AuthResult{Allow: true, Login: a.login}
}

// denyCounter denies every topic check and counts publish and receive
// checks, whichever way they are asked.
type denyCounter struct{ publish, receive atomic.Int64 }

func (d *denyCounter) count(r TopicRequest) {
	switch r.Action {
	case ActionPublish:
		d.publish.Add(1)
	case ActionReceive:
		d.receive.Add(1)
	}
}

func (d *denyCounter) CheckTopic(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
	d.count(r)
	return TopicResult{Allow: r.Action == ActionSubscribe}
}

func (d *denyCounter) CheckTopicNow(_ *ClientInfo, r TopicRequest) (TopicResult, bool) {
	d.count(r)
	return TopicResult{Allow: r.Action == ActionSubscribe}, true
}

// A publish and a delivery the client's grants allow are decided by the
// broker without asking the topic checker (which would deny them); one the
// grants deny, or do not match, still goes to the checker.
func TestGrantAllowedSkipsTopicChecker(t *testing.T) {
	all := ActionSet(0).With(ActionPublish).With(ActionReceive).With(ActionSubscribe)
	login := &Login{Grants: []Grant{
		NewGrant("g/secret", ActionSet(0).With(ActionReceive), false),
		NewGrant("g/#", all, true),
	}}
	chk := &denyCounter{}
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth, o.Hooks.Topics = loginAuth{login}, chk })
	c := dialRaw(t, tb.addr)
	c.mustConnect("granted", true)
	c.subscribe(1, "#", 0)
	publish := func(topic string) { c.send(&packets.Publish{Topic: topic, Payload: []byte("x")}) }
	next := func() string { return c.expectPublish(2 * time.Second).Topic }

	publish("g/a")
	if got := next(); got != "g/a" {
		t.Fatalf("got %s, want g/a", got)
	}
	if p, r := chk.publish.Load(), chk.receive.Load(); p != 0 || r != 0 {
		t.Fatalf("checker asked %d publish and %d receive checks the grants allow; want 0", p, r)
	}

	// g/secret: published by the grants, its receive denied by them,
	// through the checker. other: no grant matches, the checker denies the
	// publish. g/b, published after both, arrives next.
	publish("g/secret")
	publish("other")
	publish("g/b")
	if got := next(); got != "g/b" {
		t.Fatalf("got %s, want g/b", got)
	}
	if p, r := chk.publish.Load(), chk.receive.Load(); p != 1 || r != 1 {
		t.Fatalf("checker asked %d publish and %d receive checks; want 1 and 1", p, r)
	}
}

// slowDenyCounter is a denyCounter that cannot answer at once: every
// delivery for a connected client is queued for the writer's receive check.
type slowDenyCounter struct{ d *denyCounter }

func (s slowDenyCounter) CheckTopic(ctx context.Context, c *ClientInfo, r TopicRequest) TopicResult {
	return s.d.CheckTopic(ctx, c, r)
}

// With a checker that cannot answer in line, deliveries wait in the queue
// for the writer; one the receiver's grants allow is sent from there
// without the checker, in order with one that does go to it.
func TestGrantAllowedQueuedSkipsTopicChecker(t *testing.T) {
	all := ActionSet(0).With(ActionPublish).With(ActionReceive).With(ActionSubscribe)
	login := &Login{Grants: []Grant{
		NewGrant("g/secret", ActionSet(0).With(ActionReceive), false),
		NewGrant("g/#", all, true),
	}}
	chk := &denyCounter{}
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth, o.Hooks.Topics = loginAuth{login}, slowDenyCounter{chk} })
	c := dialRaw(t, tb.addr)
	c.mustConnect("granted", true)
	c.subscribe(1, "#", 0)
	want := []string{}
	for i := range 20 {
		topic := fmt.Sprintf("g/%d", i)
		if i == 10 {
			c.send(&packets.Publish{Topic: "g/secret", Payload: []byte("x")})
		}
		c.send(&packets.Publish{Topic: topic, Payload: []byte("x")})
		want = append(want, topic)
	}
	for _, w := range want {
		if got := c.expectPublish(2 * time.Second).Topic; got != w {
			t.Fatalf("got %s, want %s", got, w)
		}
	}
	if p, r := chk.publish.Load(), chk.receive.Load(); p != 0 || r != 1 {
		t.Fatalf("checker asked %d publish and %d receive checks; want 0 and 1 (g/secret)", p, r)
	}
}
