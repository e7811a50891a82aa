package mqtt

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// v5Collect drains messages from paho.golang clients until total messages
// have arrived (or the bounded wait ends) and returns the payloads each got.
func v5Collect(t *testing.T, total int, cs ...*pahoV5Client) [][]string {
	t.Helper()
	got := make([][]string, len(cs))
	n := 0
	deadline := time.After(5 * time.Second)
	for n < total {
		progressed := false
		for i, c := range cs {
			select {
			case m := <-c.msgs:
				got[i] = append(got[i], string(m.Payload))
				n++
				progressed = true
			default:
			}
		}
		if !progressed {
			select {
			case <-deadline:
				t.Fatalf("received %d of %d messages: %v", n, total, got)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return got
}

// v5CheckOnce fails unless the union of parts holds each of want exactly
// once.
func v5CheckOnce(t *testing.T, parts [][]string, want []string) {
	t.Helper()
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	slices.Sort(all)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(all, w) {
		t.Fatalf("shared group received %v, want each of %v exactly once", parts, want)
	}
}

// Shared subscriptions $share/{group}/{filter} (MQTT 5 §4.8.2): each
// message goes to exactly one member of each group, balanced (round robin)
// so both members of a group get some; a second group gets every message
// too; a non-shared subscription alongside gets all of them.
func TestV5SharedSubscriptionBalancing(t *testing.T) {
	tb := startBroker(t, nil)
	m1 := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sh-m1", CleanStart: true}, nil)
	m2 := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sh-m2", CleanStart: true}, nil)
	solo := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sh-solo", CleanStart: true}, nil)
	plain := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sh-plain", CleanStart: true}, nil)
	for _, m := range []*pahoV5Client{m1, m2} {
		m.sub(0, pahov5.SubscribeOptions{Topic: "$share/g1/v5/sh/#", QoS: 1})
	}
	solo.sub(0, pahov5.SubscribeOptions{Topic: "$share/g2/v5/sh/+", QoS: 1})
	plain.sub(0, pahov5.SubscribeOptions{Topic: "v5/sh/#", QoS: 1})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sh-pub", CleanStart: true}, nil)

	const n = 20
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(i))
		if r := pub.pub(&pahov5.Publish{Topic: "v5/sh/t", QoS: 1, Payload: []byte(fmt.Sprint(i))}); r.ReasonCode != 0 {
			t.Fatalf("PUBACK %#x", r.ReasonCode)
		}
	}
	g1 := v5Collect(t, n, m1, m2)
	v5CheckOnce(t, g1, want)
	if len(g1[0]) == 0 || len(g1[1]) == 0 {
		t.Fatalf("one member got everything: %d / %d", len(g1[0]), len(g1[1]))
	}
	v5CheckOnce(t, v5Collect(t, n, solo), want)
	v5CheckOnce(t, v5Collect(t, n, plain), want)
	m1.none(200 * time.Millisecond)
	m2.none(50 * time.Millisecond)
}

// A member that disconnects with unacknowledged QoS 1/2 messages of its
// group has them redelivered to another member (issue: "a member that
// disconnects with unacknowledged QoS 1/2 messages has them redelivered to
// another member"). The raw member never acknowledges; the paho member
// ends up with every message, and the raw member does not get them again
// when it resumes its session.
func TestV5SharedSubscriptionRedelivery(t *testing.T) {
	tb := startBroker(t, nil)
	lazy, _ := mustConnectV5(t, tb.addr, "v5-shr-lazy", true, 3600) // persistent: it may come back
	lazy.subscribeOpts(1, 0, packets.Subscription{Filter: "$share/rd/v5/shr", QoS: 2})
	good := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shr-good", CleanStart: true}, nil)
	good.sub(0, pahov5.SubscribeOptions{Topic: "$share/rd/v5/shr", QoS: 2})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shr-pub", CleanStart: true}, nil)

	var want []string
	for i := range 6 {
		want = append(want, fmt.Sprint(i))
		pub.pub(&pahov5.Publish{Topic: "v5/shr", QoS: byte(1 + i%2), Payload: []byte(fmt.Sprint(i))})
	}
	var held []string
	for {
		p, err := lazy.tryRead(300 * time.Millisecond)
		if err != nil {
			break
		}
		held = append(held, string(p.(*packets.Publish).Payload)) // and never acknowledged
	}
	if len(held) == 0 {
		t.Fatal("the lazy member got no message: balancing skipped it")
	}
	lazy.conn.Close()
	got := v5Collect(t, len(want), good)
	v5CheckOnce(t, got, want)
	good.none(200 * time.Millisecond)

	// Handed over means handed over: the lazy member, back on its session,
	// is not sent them again (each message once across the group).
	lazy, ack := mustConnectV5(t, tb.addr, "v5-shr-lazy", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("lazy member's session lost")
	}
	lazy.expectNothing(300 * time.Millisecond)
}

// Share names must be at least one character with no wildcard and be
// followed by a valid filter ([MQTT5-4.8.2-1], [MQTT5-4.8.2-2]): otherwise
// SUBACK 0x8F "topic filter invalid" for that slot (3.1.1: 0x80).
func TestV5SharedSubscriptionInvalid(t *testing.T) {
	tb := startBroker(t, nil)
	filters := []string{"$share//t", "$share/g+/t", "$share/g#/t", "$share/g", "$share/g/", "$share/g/a/#/b", "$share/ok/t"}
	subs := make([]packets.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = packets.Subscription{Filter: f, QoS: 1}
	}
	c, _ := mustConnectV5(t, tb.addr, "v5-shi", true, 0)
	codes := c.subscribeOpts(1, 0, subs...)
	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("v3-shi", true)
	codes3 := v3.subscribeOpts(1, 0, subs...)
	for i, f := range filters {
		want, want3 := packets.TopicFilterInvalid, packets.SubackFailure
		if f == "$share/ok/t" {
			want, want3 = packets.GrantedQoS1, packets.GrantedQoS1
		}
		if codes[i] != want {
			t.Errorf("v5 %q: SUBACK %v, want %v", f, codes[i], want)
		}
		if codes3[i] != want3 {
			t.Errorf("3.1.1 %q: SUBACK %v, want %v", f, codes3[i], want3)
		}
	}
}

// Retained messages are not sent for a shared subscription (5.0
// §4.8.2: "retained messages are not sent to the session when it
// establishes a new Shared Subscription"); a plain subscription gets them,
// and live messages reach the group.
func TestV5SharedSubscriptionNoRetained(t *testing.T) {
	tb := startBroker(t, nil)
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shret-pub", CleanStart: true}, nil)
	pub.pub(&pahov5.Publish{Topic: "v5/shret", QoS: 1, Retain: true, Payload: []byte("kept")})

	c, _ := mustConnectV5(t, tb.addr, "v5-shret", true, 0)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "$share/g/v5/shret", QoS: 1})
	c.expectNothing(300 * time.Millisecond)
	c.subscribeOpts(2, 0, packets.Subscription{Filter: "v5/shret", QoS: 1})
	if m := c.expectPublish(2 * time.Second); !m.Retain || string(m.Payload) != "kept" {
		t.Fatalf("plain subscription: %q retain %v", m.Payload, m.Retain)
	}
	c.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"v5/shret"}})
	c.expect(packets.UNSUBACK, 3)
	pub.pub(&pahov5.Publish{Topic: "v5/shret", QoS: 1, Payload: []byte("live")})
	if m := c.expectPublish(2 * time.Second); string(m.Payload) != "live" {
		t.Fatalf("shared subscription live: %q", m.Payload)
	}
}

// A 3.1.1 client may join a share group with a v5 client: the messages are
// split between them, each exactly once.
func TestV5SharedSubscriptionMixedVersions(t *testing.T) {
	tb := startBroker(t, nil)
	var mu sync.Mutex
	var v3got []string
	v3 := pahoClient(t, tb.addr, "v3-shmix", nil)
	waitToken(t, "3.1.1 shared subscribe", v3.Subscribe("$share/mix/v5/shmix", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		v3got = append(v3got, string(m.Payload()))
		mu.Unlock()
	}))
	v5m := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shmix", CleanStart: true}, nil)
	v5m.sub(0, pahov5.SubscribeOptions{Topic: "$share/mix/v5/shmix", QoS: 1})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-shmix-pub", CleanStart: true}, nil)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprint(i))
		pub.pub(&pahov5.Publish{Topic: "v5/shmix", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	var v5got []string
	waitFor(t, "all 10 messages across the group", func() bool {
		for {
			select {
			case m := <-v5m.msgs:
				v5got = append(v5got, string(m.Payload))
				continue
			default:
			}
			break
		}
		mu.Lock()
		defer mu.Unlock()
		return len(v5got)+len(v3got) >= 10
	})
	time.Sleep(200 * time.Millisecond) // any duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	if len(v3got) == 0 || len(v5got) == 0 {
		t.Fatalf("3.1.1 member %v, v5 member %v: both should get some", v3got, v5got)
	}
	v5CheckOnce(t, [][]string{v3got, v5got}, want)
}

// Subscription options that break the rules end the connection: No Local on
// a shared subscription ([MQTT5-3.8.3-4]) and Retain Handling 3 are protocol
// errors (0x82), reserved option bits are malformed (0x81, [MQTT5-3.8.3-5]).
func TestV5SubscribeOptionErrors(t *testing.T) {
	tb := startBroker(t, nil)
	// subscribeBytes hand-encodes a SUBSCRIBE of one filter with raw options.
	subscribeBytes := func(filter string, opts byte) []byte {
		body := []byte{0, 1, 0, byte(len(filter) >> 8), byte(len(filter))}
		body = append(body, filter...)
		body = append(body, opts)
		return append(packets.AppendFixedHeader(nil, packets.FixedHeader{Type: packets.SUBSCRIBE, Flags: 0x02, Remaining: len(body)}), body...)
	}
	for _, tc := range []struct {
		name   string
		filter string
		opts   byte
		code   packets.ReasonCode
	}{
		{"No Local on a shared subscription", "$share/g/v5/opt", 0x04 | 1, packets.ProtocolError},
		{"Retain Handling 3", "v5/opt", 0x30 | 1, packets.ProtocolError},
		{"reserved bits", "v5/opt", 0x40 | 1, packets.MalformedPacket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustConnectV5(t, tb.addr, "v5-opt", true, 0)
			c.write(subscribeBytes(tc.filter, tc.opts))
			c.expectDisconnect(tc.code)
		})
	}
	// No Local on an ordinary filter is fine.
	c, _ := mustConnectV5(t, tb.addr, "v5-opt", true, 0)
	c.write(subscribeBytes("v5/opt", 0x04|1))
	if s := c.expect(packets.SUBACK, 1).(*packets.Suback); s.ReasonCodes[0] != packets.GrantedQoS1 {
		t.Fatalf("SUBACK %v", s.ReasonCodes)
	}
}
