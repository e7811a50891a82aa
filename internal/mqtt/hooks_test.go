package mqtt

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// The topic check decides subscribe, publish and receive, including
// retained messages sent on subscribe.
func TestTopicCheckActions(t *testing.T) {
	check := topicFunc(func(_ context.Context, c *ClientInfo, r TopicRequest) TopicResult {
		switch {
		case r.Action == ActionSubscribe && r.Topic == "forbidden/#":
			return TopicResult{}
		case r.Action == ActionPublish && r.Topic == "ro/x":
			return TopicResult{}
		case r.Action == ActionReceive && c.ClientID == "sub" && r.Topic == "secret":
			return TopicResult{}
		}
		return TopicResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = check })
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	pub.send(&packets.Publish{Topic: "secret", Payload: []byte("retained secret"), Retain: true})
	pub.send(&packets.Publish{Topic: "open", Payload: []byte("retained open"), Retain: true})
	waitFor(t, "retained", func() bool { return tb.Stats().Retained == 2 })

	sub := dialRaw(t, tb.addr)
	sub.mustConnect("sub", true)
	if codes := sub.subscribe(1, "forbidden/#", 0); codes[0] != packets.SubackFailure {
		t.Fatalf("denied subscribe got %v, want 0x80", codes)
	}
	sub.subscribe(2, "#", 0)
	// Only the open retained message: the secret one fails the receive check.
	if m := sub.expectPublish(2 * time.Second); m.Topic != "open" || !m.Retain {
		t.Fatalf("got %+v", m)
	}
	sub.expectNothing(100 * time.Millisecond)

	pub.send(&packets.Publish{Topic: "ro/x", Payload: []byte("denied"), QoS: 1, PacketID: 3})
	if ack, ok := pub.read(time.Second).(*packets.Puback); !ok || ack.PacketID != 3 {
		t.Fatal("3.1.1 denied publish must still be acknowledged")
	}
	pub.send(&packets.Publish{Topic: "secret", Payload: []byte("live secret")})
	pub.send(&packets.Publish{Topic: "open", Payload: []byte("live open")})
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "live open" {
		t.Fatalf("got %+v, want only the allowed message", m)
	}
	if tb.Stats().DroppedDenied != 1 {
		t.Fatalf("denied = %d", tb.Stats().DroppedDenied)
	}
}

// topic-check.deny-publish: disconnect closes a 3.1.1 publisher whose
// PUBLISH is denied, before anything is acknowledged or routed; MQTT 5
// publishers still get the reason code in PUBACK.
func TestDeniedPublishDisconnects(t *testing.T) {
	check := topicFunc(func(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
		return TopicResult{Allow: r.Topic != "ro/x"}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = check; o.DisconnectDeniedPublish = true })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("sub", true)
	sub.subscribe(1, "#", 1)

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	pub.send(&packets.Publish{Topic: "ro/x", Payload: []byte("denied"), QoS: 1, PacketID: 3, Retain: true})
	pub.expectClosed(2 * time.Second)
	sub.expectNothing(100 * time.Millisecond)
	if st := tb.Stats(); st.DroppedDenied != 1 || st.Retained != 0 {
		t.Fatalf("denied = %d retained = %d, want 1 and 0", st.DroppedDenied, st.Retained)
	}

	v5, _ := mustConnectV5(t, tb.addr, "pub5", true, 0)
	v5.send(&packets.Publish{Topic: "ro/x", QoS: 1, PacketID: 4, Payload: []byte("x")})
	if a := v5.expect(packets.PUBACK, 4).(*packets.Puback); a.ReasonCode != packets.NotAuthorized {
		t.Fatalf("MQTT 5 denied publish: PUBACK %v, want 0x87", a.ReasonCode)
	}
}

// A receive check that blocks for one subscriber holds back that subscriber
// only: the publisher and other subscribers carry on. Asserted on order and
// counts, not on wall-clock thresholds.
func TestSlowReceiveCheckIsolated(t *testing.T) {
	release := make(chan struct{})
	check := topicFunc(func(ctx context.Context, c *ClientInfo, r TopicRequest) TopicResult {
		if r.Action == ActionReceive && c.ClientID == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return TopicResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = check })
	slow := dialRaw(t, tb.addr)
	slow.mustConnect("slow", true)
	slow.subscribe(1, "a", 0)
	fast := dialRaw(t, tb.addr)
	fast.mustConnect("fast", true)
	fast.subscribe(1, "a", 0)
	fast.subscribe(2, "b", 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)

	pub.send(&packets.Publish{Topic: "a", Payload: []byte("1")})
	for i := range 20 {
		pub.send(&packets.Publish{Topic: "b", Payload: []byte{byte('a' + i)}, QoS: 1, PacketID: uint16(i + 1)})
	}
	// All 20 acks reach the publisher and the fast subscriber gets all 21
	// messages while the slow subscriber's check is still blocked.
	for range 20 {
		if _, ok := pub.read(2 * time.Second).(*packets.Puback); !ok {
			t.Fatal("publisher held up by another client's receive check")
		}
	}
	for range 21 {
		fast.expectPublish(2 * time.Second)
	}
	slow.expectNothing(50 * time.Millisecond)
	close(release)
	if m := slow.expectPublish(2 * time.Second); string(m.Payload) != "1" {
		t.Fatalf("slow got %+v", m)
	}
}

// Events arrive in aMQTT's order for a full session (docs/design.md §3.3).
func TestEventOrder(t *testing.T) {
	rec := &recordingSink{mask: allEvents()}
	tb := startBroker(t, func(o *Options) { o.Hooks.Events = rec })
	c := dialRaw(t, tb.addr)
	c.mustConnect("ev", true)
	c.subscribe(1, "ev/t", 0)
	c.send(&packets.Publish{Topic: "ev/t", Payload: []byte("x"), Retain: true})
	c.expectPublish(time.Second)
	c.send(&packets.Unsubscribe{PacketID: 2, Filters: []string{"ev/t"}})
	c.read(time.Second)
	c.send(&packets.Disconnect{})
	c.expectClosed(time.Second)
	waitFor(t, "disconnected event", func() bool { return slices.Contains(rec.names(), "broker_client_disconnected") })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tb.Close(ctx)

	want := []string{
		"broker_pre_start", "broker_post_start",
		"mqtt_packet_received:CONNECT", "mqtt_packet_sent:CONNACK", "broker_client_connected",
		"mqtt_packet_received:SUBSCRIBE", "mqtt_packet_sent:SUBACK", "broker_client_subscribed",
		"mqtt_packet_received:PUBLISH", "broker_message_received", "broker_message_broadcast", "broker_retained_message",
		"mqtt_packet_sent:PUBLISH",
		"mqtt_packet_received:UNSUBSCRIBE", "mqtt_packet_sent:UNSUBACK", "broker_client_unsubscribed",
		"mqtt_packet_received:DISCONNECT", "broker_client_disconnected",
		"broker_pre_shutdown", "broker_post_shutdown",
	}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}

// narrowingSink wants what its mask says at the moment, and counts the
// events it is handed.
type narrowingSink struct {
	mask atomic.Uint32
	got  atomic.Int64
}

func (s *narrowingSink) Wants() EventMask { return EventMask(s.mask.Load()) }
func (s *narrowingSink) Event(*Event)     { s.got.Add(1) }

// A sink that narrows its Wants while the broker runs (an HTTP plugin whose
// manifest arrives late) stops being sent those events within the
// broker's refresh: the broker stops building them.
func TestEventMaskRefreshed(t *testing.T) {
	sink := &narrowingSink{}
	sink.mask.Store(uint32(EventMask(0).With(EventMessageReceived)))
	tb := startBroker(t, func(o *Options) { o.Hooks.Events = sink })
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	pub.send(&packets.Publish{Topic: "t", Payload: []byte("1")})
	waitFor(t, "the first message_received", func() bool { return sink.got.Load() == 1 })

	sink.mask.Store(0)
	waitFor(t, "the broker to re-read the mask", func() bool { return tb.evMask() == 0 })
	for range 10 {
		pub.send(&packets.Publish{Topic: "t", Payload: []byte("x")})
	}
	pub.send(&packets.Pingreq{})
	if _, ok := pub.read(2 * time.Second).(*packets.Pingresp); !ok {
		t.Fatal("no PINGRESP")
	}
	if n := sink.got.Load(); n != 1 {
		t.Fatalf("sink got %d events after narrowing to none, want still 1", n)
	}
}

// nowChecker answers receive checks at once for topics under "fast/", and
// makes the slow way wait for release on "slow/".
type nowChecker struct {
	release chan struct{}
	slow    atomic.Int64 // receive checks that took the slow way
	now     atomic.Int64 // receive checks answered at once (a publish check is asked in line too when the reader owes output)
	asked   atomic.Int64 // CheckTopicNow calls, answered or not
}

func (n *nowChecker) CheckTopic(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
	if r.Action == ActionReceive {
		n.slow.Add(1)
		if strings.HasPrefix(r.Topic, "slow/") {
			<-n.release
		}
	}
	return TopicResult{Allow: r.Action != ActionReceive || r.Topic != "fast/denied"}
}

func (n *nowChecker) CheckTopicNow(_ *ClientInfo, r TopicRequest) (TopicResult, bool) {
	n.asked.Add(1)
	if !strings.HasPrefix(r.Topic, "fast/") {
		return TopicResult{}, false
	}
	if r.Action == ActionReceive {
		n.now.Add(1)
	}
	// As CheckTopic: every publish is allowed.
	return TopicResult{Allow: r.Action != ActionReceive || r.Topic != "fast/denied"}, true
}

// A checker that can answer at once is asked in line, and its denials drop
// the message; but a message never overtakes an earlier one still waiting
// for its (slow) check: order per subscriber holds.
func TestReceiveCheckedInLineKeepsOrder(t *testing.T) {
	chk := &nowChecker{release: make(chan struct{})}
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = chk })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("sub", true)
	sub.subscribe(1, "#", 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)

	pub.send(&packets.Publish{Topic: "fast/1", Payload: []byte("a")})
	pub.send(&packets.Publish{Topic: "fast/denied", Payload: []byte("b")})
	pub.send(&packets.Publish{Topic: "fast/2", Payload: []byte("c")})
	for _, want := range []string{"fast/1", "fast/2"} {
		if m := sub.expectPublish(2 * time.Second); m.Topic != want {
			t.Fatalf("got %s, want %s", m.Topic, want)
		}
	}
	if chk.slow.Load() != 0 || chk.now.Load() != 3 {
		t.Fatalf("slow %d, in line %d receive checks; want 0 and 3", chk.slow.Load(), chk.now.Load())
	}

	// slow/1 waits for its check on the writer goroutine; fast/3 behind it
	// must wait too, not be delivered in line first.
	pub.send(&packets.Publish{Topic: "slow/1", Payload: []byte("d")})
	waitFor(t, "the slow check to start", func() bool { return chk.slow.Load() == 1 })
	pub.send(&packets.Publish{Topic: "fast/3", Payload: []byte("e")})
	pub.send(&packets.Pingreq{})
	if _, ok := pub.read(2 * time.Second).(*packets.Pingresp); !ok {
		t.Fatal("no PINGRESP: the publisher was held up by the subscriber's check")
	}
	sub.expectNothing(100 * time.Millisecond)
	close(chk.release)
	for _, want := range []string{"slow/1", "fast/3"} {
		if m := sub.expectPublish(2 * time.Second); m.Topic != want {
			t.Fatalf("got %s, want %s: a message overtook one waiting for its check", m.Topic, want)
		}
	}
}

// A receive check the checker cannot answer at once is tried in line once
// (or not at all, when the subscriber already has a check under way) and
// then goes to the subscriber's writer, which asks the blocking way: no
// second in-line attempt anywhere on the way.
func TestReceiveCheckOneInlineAttempt(t *testing.T) {
	chk := &nowChecker{release: make(chan struct{})}
	close(chk.release) // slow checks answer without waiting
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = chk })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("sub", true)
	sub.subscribe(1, "slow/#", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)

	const n = 20
	for i := range n {
		pub.send(&packets.Publish{Topic: "slow/x", Payload: []byte{byte(i)}, QoS: byte(i % 2), PacketID: uint16(i + 1)})
	}
	for i := range n {
		m := sub.expectPublish(2 * time.Second)
		if m.Payload[0] != byte(i) {
			t.Fatalf("message %d arrived as %d", i, m.Payload[0])
		}
		sub.ack(m)
	}
	if got := chk.slow.Load(); got != n {
		t.Fatalf("%d blocking receive checks for %d deliveries, want one each", got, n)
	}
	if got := chk.asked.Load(); got > n {
		t.Fatalf("%d in-line receive checks for %d deliveries: a check that could not be answered at once was tried in line again", got, n)
	}
}
