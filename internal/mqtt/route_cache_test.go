package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// TestRouteCacheFollowsSubscriptions: a publisher that keeps sending to one
// topic routes from its cache (routeFrom), which must follow every change
// to the subscriptions between its publishes: a new subscriber, a replaced
// subscription (its QoS), an unsubscribe and a subscriber that left.
func TestRouteCacheFollowsSubscriptions(t *testing.T) {
	tb := startBroker(t, nil)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("rc-pub", true)
	a := dialRaw(t, tb.addr)
	a.mustConnect("rc-a", true)
	a.subscribe(1, "rc/t", 0)

	pub.publish1(1, "rc/t", "1", false)
	if p := a.expectPublish(2 * time.Second); string(p.Payload) != "1" || p.QoS != 0 {
		t.Fatalf("a got %q at QoS %d, want \"1\" at 0", p.Payload, p.QoS)
	}

	// A second subscriber: the next publish to the same topic reaches it.
	b := dialRaw(t, tb.addr)
	b.mustConnect("rc-b", true)
	b.subscribe(1, "rc/+", 1)
	pub.publish1(2, "rc/t", "2", false)
	if got := a.nextPayload(2 * time.Second); got != "2" {
		t.Fatalf("a got %q, want 2", got)
	}
	if p := b.expectPublish(2 * time.Second); string(p.Payload) != "2" || p.QoS != 1 {
		t.Fatalf("b got %q at QoS %d, want \"2\" at 1", p.Payload, p.QoS)
	} else {
		b.ack(p)
	}

	// a's subscription replaced by one at QoS 1: delivered at QoS 1.
	a.subscribe(2, "rc/t", 1)
	pub.publish1(3, "rc/t", "3", false)
	if p := a.expectPublish(2 * time.Second); string(p.Payload) != "3" || p.QoS != 1 {
		t.Fatalf("a got %q at QoS %d, want \"3\" at 1", p.Payload, p.QoS)
	} else {
		a.ack(p)
	}
	if got := b.nextPayload(2 * time.Second); got != "3" {
		t.Fatalf("b got %q, want 3", got)
	}

	// a unsubscribes and subscribes elsewhere: the next publish to rc/t
	// must not reach it. The publish to rc/other after it does, and is the
	// first thing a receives: a's deliveries keep the publisher's order.
	a.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"rc/t"}})
	a.expect(packets.UNSUBACK, 3)
	a.subscribe(4, "rc/other", 0)
	pub.publish1(4, "rc/t", "4", false)
	pub.publish1(5, "rc/other", "5", false)
	if got := a.nextPayload(2 * time.Second); got != "5" {
		t.Fatalf("a got %q after unsubscribing from rc/t, want 5", got)
	}
	if got := b.nextPayload(2 * time.Second); got != "4" {
		t.Fatalf("b got %q, want 4", got)
	}
	if got := b.nextPayload(2 * time.Second); got != "5" {
		t.Fatalf("b got %q, want 5", got)
	}

	// b leaves (clean session: its subscriptions go): the cached route to
	// rc/t must not hold it. a subscribes again and is the only receiver.
	b.disconnect()
	waitSessionGone(t, tb, "rc-b")
	a.subscribe(5, "rc/t", 0)
	pub.publish1(6, "rc/t", "6", false)
	if got := a.nextPayload(2 * time.Second); got != "6" {
		t.Fatalf("a got %q, want 6", got)
	}
}
