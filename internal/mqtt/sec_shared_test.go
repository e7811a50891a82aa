package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// secShareState returns the broker's subscription count and the size of
// its shared-subscription round-robin map.
func secShareState(b *Broker) (subs int64, rr int) {
	b.shareMu.Lock()
	rr = len(b.shareRR)
	b.shareMu.Unlock()
	return b.Stats().Subscriptions, rr
}

// $share subscriptions end with UNSUBSCRIBE and with the session: after
// rounds of subscribe / receive / unsubscribe the member receives nothing
// more, and the subscription count and the round-robin state are back to
// zero; the same after a session with shared subscriptions ends.
func TestSharedSubscriptionsEnd(t *testing.T) {
	tb := startBroker(t, nil)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("share-pub", true)
	c := dialRaw(t, tb.addr)
	c.mustConnect("share-member", true)

	const rounds = 50
	for i := range rounds {
		filter := fmt.Sprintf("$share/g%d/share/%d", i, i)
		c.subscribe(uint16(2*i+1), filter, 1)
		pub.publish1(uint16(i+1), fmt.Sprintf("share/%d", i), "m", false)
		if got := c.nextPayload(2 * time.Second); got != "m" {
			t.Fatalf("round %d: got %q", i, got)
		}
		c.send(&packets.Unsubscribe{PacketID: uint16(2*i + 2), Filters: []string{filter}})
		c.expect(packets.UNSUBACK, uint16(2*i+2))
	}
	for i := range rounds {
		pub.send(&packets.Publish{Topic: fmt.Sprintf("share/%d", i), Payload: []byte("after")})
	}
	c.expectNothing(300 * time.Millisecond)
	if subs, rr := secShareState(tb.Broker); subs != 0 || rr != 0 {
		t.Fatalf("after %d unsubscribed rounds: %d subscriptions, %d round-robin entries; want 0 and 0", rounds, subs, rr)
	}

	// Session end: a clean session's shared subscriptions go with it.
	d := dialRaw(t, tb.addr)
	d.mustConnect("share-leaver", true)
	for i := range 10 {
		d.subscribe(uint16(i+1), fmt.Sprintf("$share/leave%d/share/x", i), 0)
	}
	pub.send(&packets.Publish{Topic: "share/x", Payload: []byte("x")})
	for range 10 {
		d.expectPublish(2 * time.Second)
	}
	d.disconnect()
	waitFor(t, "the leaver's subscriptions and round-robin entries to go", func() bool {
		subs, rr := secShareState(tb.Broker)
		return subs == 0 && rr == 0
	})
}
