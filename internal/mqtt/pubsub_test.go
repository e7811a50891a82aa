package mqtt

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Delivered QoS is min(publish QoS, subscription QoS), in every combination,
// with real paho clients.
func TestPahoQoSMatrix(t *testing.T) {
	tb := startBroker(t, nil)
	for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
		for subQoS := byte(0); subQoS <= 2; subQoS++ {
			t.Run(fmt.Sprintf("pub%d_sub%d", pubQoS, subQoS), func(t *testing.T) {
				topic := fmt.Sprintf("matrix/%d/%d", pubQoS, subQoS)
				got := make(chan paho.Message, 10)
				sub := pahoClient(t, tb.addr, "sub-"+topic, nil)
				tok := sub.Subscribe(topic, subQoS, func(_ paho.Client, m paho.Message) { got <- m })
				if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribe: %v", tok.Error())
				}
				pub := pahoClient(t, tb.addr, "pub-"+topic, nil)
				if tok := pub.Publish(topic, pubQoS, false, "hello"); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
				select {
				case m := <-got:
					if string(m.Payload()) != "hello" || m.Topic() != topic {
						t.Fatalf("got %q on %q", m.Payload(), m.Topic())
					}
					if want := min(pubQoS, subQoS); m.Qos() != want {
						t.Fatalf("delivered QoS %d, want %d", m.Qos(), want)
					}
					if m.Retained() {
						t.Fatal("live message forwarded with retain=1")
					}
				case <-time.After(3 * time.Second):
					t.Fatal("message not delivered")
				}
				select {
				case m := <-got:
					t.Fatalf("duplicate delivery %q", m.Payload())
				case <-time.After(50 * time.Millisecond):
				}
			})
		}
	}
}

// QoS 1 and 2 streams arrive complete and in order ([MQTT-4.6.0-6]).
func TestPahoOrderedStream(t *testing.T) {
	tb := startBroker(t, nil)
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			const n = 500
			var mu sync.Mutex
			var got []string
			done := make(chan struct{})
			sub := pahoClient(t, tb.addr, fmt.Sprintf("ord-sub-%d", qos), func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
			topic := fmt.Sprintf("ordered/%d", qos)
			sub.Subscribe(topic, qos, func(_ paho.Client, m paho.Message) {
				mu.Lock()
				got = append(got, string(m.Payload()))
				if len(got) == n {
					close(done)
				}
				mu.Unlock()
			}).Wait()
			pub := pahoClient(t, tb.addr, fmt.Sprintf("ord-pub-%d", qos), nil)
			toks := make([]paho.Token, n)
			for i := range n {
				toks[i] = pub.Publish(topic, qos, false, fmt.Sprint(i))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				mu.Lock()
				t.Fatalf("got %d of %d", len(got), n)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, s := range got {
				if s != fmt.Sprint(i) {
					t.Fatalf("message %d is %q: out of order", i, s)
				}
			}
		})
	}
}

// A retained message is sent to a new subscriber with RETAIN set, live
// forwarding clears it, and an empty retained payload clears the topic.
func TestRetained(t *testing.T) {
	tb := startBroker(t, nil)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("ret-pub", true)
	pub.send(&packets.Publish{Topic: "ret/a", Payload: []byte("v1"), Retain: true, QoS: 1, PacketID: 1})
	if _, ok := pub.read(2 * time.Second).(*packets.Puback); !ok {
		t.Fatal("no PUBACK")
	}

	sub := dialRaw(t, tb.addr)
	sub.mustConnect("ret-sub", true)
	if codes := sub.subscribe(1, "ret/+", 1); codes[0] != 1 {
		t.Fatalf("SUBACK %v", codes)
	}
	m := sub.expectPublish(2 * time.Second)
	if m.Topic != "ret/a" || string(m.Payload) != "v1" || !m.Retain || m.QoS != 1 {
		t.Fatalf("retained delivery %+v", m)
	}
	sub.send(&packets.Puback{PacketID: m.PacketID})

	pub.send(&packets.Publish{Topic: "ret/a", Payload: []byte("v2"), Retain: true})
	m = sub.expectPublish(2 * time.Second)
	if string(m.Payload) != "v2" || m.Retain {
		t.Fatalf("live delivery of a retained publish must have retain=0: %+v", m)
	}

	// Empty payload clears; it is still forwarded to current subscribers.
	pub.send(&packets.Publish{Topic: "ret/a", Retain: true})
	m = sub.expectPublish(2 * time.Second)
	if len(m.Payload) != 0 {
		t.Fatalf("clear not forwarded: %+v", m)
	}
	waitFor(t, "retained cleared", func() bool { return tb.Stats().Retained == 0 })
	late := dialRaw(t, tb.addr)
	late.mustConnect("ret-late", true)
	late.subscribe(1, "ret/#", 1)
	late.expectNothing(200 * time.Millisecond)
}

// A will is published on an abnormal disconnect (retained when asked) and
// not on DISCONNECT.
func TestWill(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("will-watch", true)
	sub.subscribe(1, "will/#", 1)

	dying := dialRaw(t, tb.addr)
	dying.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "dying", CleanStart: true,
		WillFlag: true, WillTopic: "will/dying", WillPayload: []byte("gone"), WillQoS: 1, WillRetain: true})
	if ack := dying.read(time.Second).(*packets.Connack); ack.ReasonCode != 0 {
		t.Fatalf("connack %v", ack.ReasonCode)
	}
	dying.conn.Close()
	m := sub.expectPublish(2 * time.Second)
	if m.Topic != "will/dying" || string(m.Payload) != "gone" || m.QoS != 1 {
		t.Fatalf("will %+v", m)
	}
	sub.send(&packets.Puback{PacketID: m.PacketID})
	waitFor(t, "retained will", func() bool { return tb.Stats().Retained == 1 })

	polite := dialRaw(t, tb.addr)
	polite.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "polite", CleanStart: true,
		WillFlag: true, WillTopic: "will/polite", WillPayload: []byte("gone")})
	polite.read(time.Second)
	polite.send(&packets.Disconnect{})
	polite.expectClosed(2 * time.Second)
	sub.expectNothing(200 * time.Millisecond)
}

// Overlapping subscriptions deliver one copy at the highest granted QoS.
func TestOverlappingSubscriptions(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("overlap", true)
	sub.subscribe(1, "o/#", 0)
	sub.subscribe(2, "o/+", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("overlap-pub", true)
	pub.send(&packets.Publish{Topic: "o/x", Payload: []byte("x"), QoS: 1, PacketID: 7})
	m := sub.expectPublish(2 * time.Second)
	if m.QoS != 1 {
		t.Fatalf("QoS %d, want 1", m.QoS)
	}
	sub.send(&packets.Puback{PacketID: m.PacketID})
	sub.expectNothing(200 * time.Millisecond)
}
