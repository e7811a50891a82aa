package cluster

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// A message published on one node reaches subscribers on the others at
// QoS 0 and 1, with the QoS it was published at, exactly once per
// subscriber: the publisher's own node included, and a node with two
// overlapping filters gets one copy per subscriber, not one per filter.
func TestMessagesCrossNodesOncePerSubscriber(t *testing.T) {
	ns := startNATS(t)
	n1, n2, n3 := startNode(t, ns, "n1"), startNode(t, ns, "n2"), startNode(t, ns, "n3")
	pub := client(t, n1, "pub", true)
	local := subscribe(t, client(t, n1, "s1", true), "a/#", 1)
	wild := subscribe(t, client(t, n2, "s2", true), "a/+/c", 1)
	// Two subscribers with overlapping filters on one node, one of them
	// holding both: still one copy each.
	// (paho would call each matching handler: one default handler counts
	// what the broker sent.)
	both := newReceived()
	c3 := clientWith(t, n3, "s3", true, both)
	wait(t, "first filter", c3.Subscribe("a/b/c", 1, nil))
	wait(t, "second filter", c3.Subscribe("a/#", 1, nil))
	other := subscribe(t, client(t, n3, "s4", true), "a/#", 0)

	for i := range 20 {
		qos := byte(i % 2)
		wait(t, "publish", pub.Publish("a/b/c", qos, false, payload(i)))
	}
	for i := range 20 {
		for name, r := range map[string]*received{"local": local, "wild": wild, "both": both, "other": other} {
			m := r.next(t)
			if !bytes.Equal(m.Payload(), payload(i)) {
				t.Fatalf("%s: message %d is %q, want %q (order or copies wrong)", name, i, m.Payload(), payload(i))
			}
			want := byte(i % 2)
			if name == "other" {
				want = 0
			}
			if m.Qos() != want {
				t.Errorf("%s: message %d at QoS %d, want %d", name, i, m.Qos(), want)
			}
		}
	}
	for _, r := range []*received{local, wild, both, other} {
		r.none(t, 300*time.Millisecond)
	}
}

// MQTT's wildcard rules hold across nodes: '#' and '+' do not match
// $-topics, a filter naming the $-topic does; "a/#" matches "a"; levels
// holding characters NATS reserves ('.', ' ', '*', '>') and empty levels
// travel intact; $SYS stays on its node.
func TestWildcardsAndDollarTopicsAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	pub := client(t, n1, "pub", true)
	sub := client(t, n2, "sub", true)
	all := subscribe(t, sub, "#", 0)
	dollar := subscribe(t, client(t, n2, "sub2", true), "$x/+", 0)
	parent := subscribe(t, client(t, n2, "sub3", true), "a/#", 0)
	odd := subscribe(t, client(t, n2, "sub4", true), "a.b/+/ */>", 0)

	for _, topic := range []string{"$x/y", "a", "a.b// */>", "a.b/x/ */>"} {
		wait(t, "publish "+topic, pub.Publish(topic, 0, false, []byte(topic)))
	}
	// "#" gets everything but $x/y, in order.
	for _, want := range []string{"a", "a.b// */>", "a.b/x/ */>"} {
		if m := all.next(t); m.Topic() != want || string(m.Payload()) != want {
			t.Fatalf("# got %q, want %q", m.Topic(), want)
		}
	}
	if m := dollar.next(t); m.Topic() != "$x/y" {
		t.Fatalf("$x/+ got %q", m.Topic())
	}
	if m := parent.next(t); m.Topic() != "a" {
		t.Fatalf("a/# got %q, want a", m.Topic())
	}
	for _, want := range []string{"a.b// */>", "a.b/x/ */>"} {
		if m := odd.next(t); m.Topic() != want {
			t.Fatalf("a.b/+/ */> got %q, want %q", m.Topic(), want)
		}
	}
	sys := subscribe(t, client(t, n2, "sys", true), "$SYS/#", 0)
	n1.broker.Publish(mqttPublish("plain/after", nil))
	_ = sys
	all.next(t) // plain/after: the barrier
	sys.none(t, 200*time.Millisecond)
	for _, r := range []*received{all, dollar, parent, odd} {
		r.none(t, 200*time.Millisecond)
	}
}

// MQTT 5 properties and the publisher's client id (for No Local) travel
// with the message.
func TestPropertiesAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	sub, _ := v5(t, n2, "sub")
	got := make(chan *pahov5.Publish, 10)
	sub.AddOnPublishReceived(func(pr pahov5.PublishReceived) (bool, error) { got <- pr.Packet; return true, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "p/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub, _ := v5(t, n1, "pub")
	expiry := uint32(60)
	if _, err := pub.Publish(ctx, &pahov5.Publish{Topic: "p/1", QoS: 1, Payload: []byte("x"), Properties: &pahov5.PublishProperties{
		ContentType: "text/plain", ResponseTopic: "r/1", CorrelationData: []byte{1, 2}, MessageExpiry: &expiry,
		User: pahov5.UserProperties{{Key: "k", Value: "v"}}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		pp := p.Properties
		if p.QoS != 1 || pp.ContentType != "text/plain" || pp.ResponseTopic != "r/1" || !bytes.Equal(pp.CorrelationData, []byte{1, 2}) ||
			pp.MessageExpiry == nil || *pp.MessageExpiry > 60 || *pp.MessageExpiry < 50 || pp.User.Get("k") != "v" {
			t.Errorf("got QoS %d, properties %+v", p.QoS, pp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
}

// Interest is counted per session: when one of two subscribers of a filter
// on a node leaves, the other still hears the other nodes.
func TestInterestIsReferenceCounted(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	c1 := client(t, n2, "one", true)
	subscribe(t, c1, "rc/#", 1)
	stays := subscribe(t, client(t, n2, "two", true), "rc/#", 1)
	wait(t, "unsubscribe", c1.Unsubscribe("rc/#"))
	pub := client(t, n1, "pub", true)
	wait(t, "publish", pub.Publish("rc/x", 1, false, []byte("still")))
	if m := stays.next(t); string(m.Payload()) != "still" {
		t.Fatalf("got %q", m.Payload())
	}
}

// A shared subscription with members on two nodes gets each message once,
// whichever node it was published on, and both nodes' members get some.
func TestSharedSubscriptionAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2, n3 := startNode(t, ns, "n1"), startNode(t, ns, "n2"), startNode(t, ns, "n3")
	group := newReceived()
	for i, tn := range []*testNode{n1, n1, n2} {
		c := clientWith(t, tn, fmt.Sprintf("member%d", i), true, group)
		wait(t, "join", c.Subscribe("$share/g/jobs/+", 1, nil))
	}
	plain := subscribe(t, client(t, n2, "plain", true), "jobs/+", 1)
	pubs := []pahoClient{client(t, n3, "pub3", true), client(t, n1, "pub1", true)}
	const total = 200
	for i := range total {
		wait(t, "publish", pubs[i%2].Publish("jobs/x", 1, false, payload(i)))
	}
	seen := map[string]int{}
	for range total {
		seen[string(group.next(t).Payload())]++
		plain.next(t)
	}
	group.none(t, 300*time.Millisecond)
	for i := range total {
		if seen[string(payload(i))] != 1 {
			t.Fatalf("message %d reached the group %d times", i, seen[string(payload(i))])
		}
	}
	st1, st2 := n1.broker.Stats().MessagesOut, n2.broker.Stats().MessagesOut
	if st1 == 0 || st2 <= total {
		t.Errorf("messages out: n1 %d, n2 %d (plain %d included): want the group split over both nodes", st1, st2, total)
	}
}
