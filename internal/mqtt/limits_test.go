package mqtt

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// With MaxInflight = 2 a subscriber that does not acknowledge holds exactly
// two QoS 1 messages; each PUBACK releases exactly the next queued one, and
// Stats reports the window and the queue. The same holds when a topic
// checker is set, where the subscriber's writer moves the queue into the
// window after each receive check.
func TestInflightWindowQoS1(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testInflightWindowQoS1(t, nil) })
	allow := topicFunc(func(context.Context, *ClientInfo, TopicRequest) TopicResult { return TopicResult{Allow: true} })
	t.Run("checked", func(t *testing.T) { testInflightWindowQoS1(t, allow) })
}

func testInflightWindowQoS1(t *testing.T, check TopicChecker) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 2
		o.Hooks.Topics = check
	})
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("win-sub", true)
	sub.subscribe(1, "win", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("win-pub", true)
	for i := range 5 {
		pub.send(&packets.Publish{Topic: "win", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(i + 1)})
	}
	for i := range 5 {
		pub.expect(packets.PUBACK, uint16(i+1))
	}

	var got []*packets.Publish
	for range 2 {
		got = append(got, sub.expectPublish(2*time.Second))
	}
	sub.expectNothing(200 * time.Millisecond)
	waitFor(t, "inflight 2, queued 3", func() bool { st := tb.Stats(); return st.Inflight == 2 && st.Queued == 3 })

	for next := 2; next < 5; next++ {
		acked := got[next-2]
		sub.send(&packets.Puback{PacketID: acked.PacketID})
		m := sub.expectPublish(2 * time.Second)
		if string(m.Payload) != strconv.Itoa(next) {
			t.Fatalf("after acking %q got %q, want %q", acked.Payload, m.Payload, strconv.Itoa(next))
		}
		got = append(got, m)
		sub.expectNothing(100 * time.Millisecond) // exactly one released
		wantQueued := int64(4 - next)
		waitFor(t, fmt.Sprintf("inflight 2, queued %d", wantQueued), func() bool {
			st := tb.Stats()
			return st.Inflight == 2 && st.Queued == wantQueued
		})
	}
	for i, m := range got {
		if string(m.Payload) != strconv.Itoa(i) || m.QoS != 1 {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	sub.send(&packets.Puback{PacketID: got[3].PacketID})
	sub.send(&packets.Puback{PacketID: got[4].PacketID})
	waitFor(t, "window drained", func() bool { st := tb.Stats(); return st.Inflight == 0 && st.Queued == 0 })
}

// A QoS 2 delivery holds its window slot until PUBCOMP, not PUBREC
// ([MQTT-4.3.3-1]: the flow is complete only with PUBCOMP).
func TestInflightWindowQoS2(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxInflight = 1 })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("win2-sub", true)
	sub.subscribe(1, "win2", 2)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("win2-pub", true)
	for i := range 2 {
		id := uint16(i + 1)
		pub.send(&packets.Publish{Topic: "win2", Payload: []byte(strconv.Itoa(i)), QoS: 2, PacketID: id})
		pub.expect(packets.PUBREC, id)
		pub.send(&packets.Pubrel{PacketID: id})
		pub.expect(packets.PUBCOMP, id)
	}
	m0 := sub.expectPublish(2 * time.Second)
	if string(m0.Payload) != "0" || m0.QoS != 2 {
		t.Fatalf("got %+v", m0)
	}
	sub.expectNothing(100 * time.Millisecond)
	sub.send(&packets.Pubrec{PacketID: m0.PacketID})
	sub.expect(packets.PUBREL, m0.PacketID)
	sub.expectNothing(200 * time.Millisecond) // still inflight until PUBCOMP
	if st := tb.Stats(); st.Inflight != 1 || st.Queued != 1 {
		t.Fatalf("inflight %d queued %d, want 1 and 1", st.Inflight, st.Queued)
	}
	sub.send(&packets.Pubcomp{PacketID: m0.PacketID})
	m1 := sub.expectPublish(2 * time.Second)
	if string(m1.Payload) != "1" || m1.QoS != 2 {
		t.Fatalf("got %+v", m1)
	}
}

// MaxQueued bounds an offline session's queue. The drop policy keeps the
// oldest: the first five of eight arrive on reconnect, in order, and the
// three newest are counted as DroppedQueueFull.
func TestOfflineQueueBound(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxQueued = 5 })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("qb-sub", false)
	sub.subscribe(1, "qb", 1)
	sub.disconnect()
	waitFor(t, "offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("qb-pub", true)
	for i := range 8 {
		pub.send(&packets.Publish{Topic: "qb", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(i + 1)})
	}
	for i := range 8 {
		pub.expect(packets.PUBACK, uint16(i+1))
	}
	st := tb.Stats()
	if st.Queued != 5 || st.DroppedQueueFull != 3 {
		t.Fatalf("queued %d dropped %d, want 5 and 3", st.Queued, st.DroppedQueueFull)
	}

	sub2 := dialRaw(t, tb.addr)
	if ack := sub2.mustConnect("qb-sub", false); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	for i := range 5 {
		m := sub2.expectPublish(2 * time.Second)
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: the queue must keep the oldest and drop the new", i, m.Payload)
		}
		sub2.send(&packets.Puback{PacketID: m.PacketID})
	}
	sub2.expectNothing(200 * time.Millisecond)
	waitFor(t, "drained", func() bool { st := tb.Stats(); return st.Queued == 0 && st.Inflight == 0 })
	if got := tb.Stats().DroppedQueueFull; got != 3 {
		t.Fatalf("DroppedQueueFull = %d, want 3", got)
	}
}

// A subscriber that never reads fills its socket and then its write buffer
// (MaxOutboundBytes); QoS 0 beyond that is dropped and counted, while the
// publisher keeps being acknowledged and another subscriber gets every
// message.
func TestSlowQoS0SubscriberDropsWithoutBlocking(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxOutboundBytes = 64 << 10 })

	// The slow subscriber: a raw socket with a small receive buffer that
	// nobody reads after SUBACK.
	slow := dialRaw(t, tb.addr)
	if tc, ok := slow.conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	slow.mustConnect("slow-reader", true)
	slow.subscribe(1, "flood", 0)

	var mu sync.Mutex
	var got []string
	fast, _ := pahoConnect(t, "tcp://"+tb.addr, "fast-reader", func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
	waitToken(t, "subscribe", fast.Subscribe("flood", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	}))
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("flooder", true)
	payload := make([]byte, 16<<10)
	// One message at a time, each acknowledged before the next (and the
	// fast subscriber kept close behind), until 20 in a row are dropped for
	// the slow subscriber: its writer had a round trip to drain its buffer
	// each time and could not, so the drops come from a full socket, not
	// from a burst.
	const maxMessages = 4000 // 64 MB: far beyond any socket buffer
	sent := 0
	for run := 0; sent < maxMessages && run < 20; {
		before := tb.Stats().DroppedQoS0
		copy(payload, fmt.Sprintf("%08d", sent))
		id := uint16(sent%65535 + 1)
		pub.send(&packets.Publish{Topic: "flood", Payload: payload, QoS: 1, PacketID: id})
		pub.expect(packets.PUBACK, id)       // the publisher is not held up
		if tb.Stats().DroppedQoS0 > before { // routed before acknowledged
			run++
		} else {
			run = 0
		}
		sent++
		if sent%16 == 0 {
			n := sent
			waitFor(t, fmt.Sprintf("fast subscriber at %d", n), func() bool { return received() == n })
		}
	}
	total := sent
	waitFor(t, "fast subscriber complete", func() bool { return received() == total })
	st := tb.Stats()
	t.Logf("sent %d messages, DroppedQoS0 = %d", sent, st.DroppedQoS0)
	if st.DroppedQoS0 < 20 {
		t.Fatalf("sent %d messages (%d MB) to a subscriber that never reads, DroppedQoS0 = %d", sent, sent*len(payload)>>20, st.DroppedQoS0)
	}
	if st.DroppedQueueFull != 0 {
		t.Fatalf("DroppedQueueFull = %d: the fast subscriber lost messages", st.DroppedQueueFull)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != sent {
		t.Fatalf("fast subscriber got %d of %d", len(got), sent)
	}
	for i, p := range got {
		if p[:8] != fmt.Sprintf("%08d", i) {
			t.Fatalf("fast subscriber message %d is %q", i, p[:8])
		}
	}
	// The slow one is still connected: dropping QoS 0 is not a reason to cut it.
	if st.ClientsConnected != 3 {
		t.Fatalf("connected = %d, want 3", st.ClientsConnected)
	}
}

// Limits.MaxKeepAlive refuses CONNECTs asking for a longer keep alive, or
// none at all (keep alive 0 turns the mechanism off, 3.1.2.10), with
// CONNACK 0x02 and session present 0 ([MQTT-3.2.2-4]); within the cap is
// accepted.
func TestMaxKeepAlive(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxKeepAlive = 10 })
	for _, tc := range []struct {
		ka   uint16
		code packets.ReasonCode
	}{
		{60, packets.ConnRefusedIdentifierRejected},
		{11, packets.ConnRefusedIdentifierRejected},
		{0, packets.ConnRefusedIdentifierRejected},
		{5, packets.ConnAccepted},
		{10, packets.ConnAccepted},
	} {
		t.Run(fmt.Sprintf("ka%d", tc.ka), func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			ack := c.connect(fmt.Sprintf("ka-%d", tc.ka), true, tc.ka)
			if ack.ReasonCode != tc.code {
				t.Fatalf("keep alive %d: CONNACK %#x, want %#x", tc.ka, byte(ack.ReasonCode), byte(tc.code))
			}
			if tc.code != 0 {
				if ack.SessionPresent {
					t.Fatal("refused CONNACK with session present")
				}
				c.expectClosed(2 * time.Second)
				return
			}
			c.send(&packets.Pingreq{})
			if _, ok := c.read(time.Second).(*packets.Pingresp); !ok {
				t.Fatal("accepted client not served")
			}
		})
	}
	if st := tb.Stats(); st.ClientsTotal != 2 {
		t.Fatalf("clients total %d, want 2", st.ClientsTotal)
	}
}

// MaxQueuedBytes counts a message's MQTT 5 properties, which are queued
// and forwarded with it: empty payloads carrying large user properties
// stop at the byte bound, and the rest are counted as DroppedQueueFull.
func TestOfflineQueueByteBoundCountsProperties(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxQueuedBytes = 40000 })
	sub, _ := mustConnectV5(t, tb.addr, "qbp-sub", true, 600)
	sub.subscribe(1, "qbp", 1)
	sub.disconnect()
	waitFor(t, "offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub, _ := mustConnectV5(t, tb.addr, "qbp-pub", true, 0)
	big := strings.Repeat("u", 16000) // each message costs about 16 KB queued
	const n = 10
	for i := range n {
		p := &packets.Publish{Topic: "qbp", QoS: 1, PacketID: uint16(i + 1)}
		p.Props.User = []packets.UserProperty{{Key: "k", Value: big}}
		pub.send(p)
		pub.expect(packets.PUBACK, uint16(i+1))
	}
	if st := tb.Stats(); st.Queued != 2 || st.DroppedQueueFull != n-2 {
		t.Fatalf("queued %d dropped %d, want 2 and %d: properties must count against max-queued-bytes",
			st.Queued, st.DroppedQueueFull, n-2)
	}
}
