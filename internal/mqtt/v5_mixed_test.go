package mqtt

import (
	"fmt"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// v3Inbox subscribes a paho.mqtt.golang (3.1.1) client and returns the
// channel its messages arrive on.
func v3Inbox(t *testing.T, c paho.Client, filter string, qos byte) chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 64)
	waitToken(t, "3.1.1 subscribe "+filter, c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { ch <- m }))
	return ch
}

func v3Recv(t *testing.T, ch chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(3 * time.Second):
		t.Fatal("3.1.1 client: no message")
		return nil
	}
}

// 3.1.1 and 5.0 clients on the same topics: QoS 0, 1 and 2 both ways, each
// delivered once at the QoS it was published with.
func TestV5MixedQoSBothWays(t *testing.T) {
	tb := startBroker(t, nil)
	v3 := pahoClient(t, tb.addr, "v3-mix", nil)
	v3in := v3Inbox(t, v3, "mix/from-v5/#", 2)
	v5 := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mix", CleanStart: true}, nil)
	v5.sub(0, pahov5.SubscribeOptions{Topic: "mix/from-v3/#", QoS: 2})

	for qos := byte(0); qos <= 2; qos++ {
		topic := fmt.Sprintf("mix/from-v3/%d", qos)
		waitToken(t, "3.1.1 publish", v3.Publish(topic, qos, false, "v3-"+topic))
		m := v5.recv(3 * time.Second)
		if m.Topic != topic || m.QoS != qos || string(m.Payload) != "v3-"+topic {
			t.Fatalf("v5 got %s QoS %d %q, want %s QoS %d", m.Topic, m.QoS, m.Payload, topic, qos)
		}

		topic = fmt.Sprintf("mix/from-v5/%d", qos)
		v5.pub(&pahov5.Publish{Topic: topic, QoS: qos, Payload: []byte("v5-" + topic),
			Properties: &pahov5.PublishProperties{User: pahov5.UserProperties{{Key: "k", Value: "v"}}}})
		m3 := v3Recv(t, v3in)
		if m3.Topic() != topic || m3.Qos() != qos || string(m3.Payload()) != "v5-"+topic {
			t.Fatalf("3.1.1 got %s QoS %d %q, want %s QoS %d", m3.Topic(), m3.Qos(), m3.Payload(), topic, qos)
		}
	}
	v5.none(200 * time.Millisecond)
	select {
	case m := <-v3in:
		t.Fatalf("3.1.1 duplicate %s", m.Topic())
	default:
	}
}

// Retained messages across versions: one retained by a 3.1.1 publisher and
// one (with properties) by a v5 publisher reach new subscribers of either
// version with RETAIN set; the v5 subscriber sees the v5 message's
// properties and none on the 3.1.1 one.
func TestV5MixedRetained(t *testing.T) {
	tb := startBroker(t, nil)
	v3pub := pahoClient(t, tb.addr, "v3-mixr-pub", nil)
	waitToken(t, "3.1.1 retained publish", v3pub.Publish("mixr/v3", 1, true, "from-v3"))
	v5pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mixr-pub", CleanStart: true}, nil)
	v5pub.pub(&pahov5.Publish{Topic: "mixr/v5", QoS: 1, Retain: true, Payload: []byte("from-v5"),
		Properties: &pahov5.PublishProperties{ContentType: "text/plain", User: pahov5.UserProperties{{Key: "src", Value: "v5"}}}})

	v3 := pahoClient(t, tb.addr, "v3-mixr-sub", nil)
	v3in := v3Inbox(t, v3, "mixr/#", 1)
	got3 := map[string]string{}
	for range 2 {
		m := v3Recv(t, v3in)
		if !m.Retained() {
			t.Errorf("3.1.1 subscriber: %s without RETAIN", m.Topic())
		}
		got3[m.Topic()] = string(m.Payload())
	}
	if got3["mixr/v3"] != "from-v3" || got3["mixr/v5"] != "from-v5" {
		t.Fatalf("3.1.1 subscriber got %v", got3)
	}

	v5 := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mixr-sub", CleanStart: true}, nil)
	v5.sub(0, pahov5.SubscribeOptions{Topic: "mixr/#", QoS: 1})
	for range 2 {
		m := v5.recv(3 * time.Second)
		if !m.Retain {
			t.Errorf("v5 subscriber: %s without RETAIN", m.Topic)
		}
		pp := m.Properties
		switch m.Topic {
		case "mixr/v3":
			if string(m.Payload) != "from-v3" || pp != nil && (pp.ContentType != "" || len(pp.User) != 0) {
				t.Errorf("v5 subscriber, 3.1.1 message: %q %+v", m.Payload, pp)
			}
		case "mixr/v5":
			if string(m.Payload) != "from-v5" || pp == nil || pp.ContentType != "text/plain" || pp.User.Get("src") != "v5" {
				t.Errorf("v5 subscriber, v5 message: %q %+v", m.Payload, pp)
			}
		default:
			t.Errorf("unexpected %s", m.Topic)
		}
	}
}

// Wills across versions: a 3.1.1 client's will reaches a v5 subscriber; a
// v5 client's will (with a user property) reaches a 3.1.1 subscriber, and
// a v5 subscriber with its property.
func TestV5MixedWills(t *testing.T) {
	tb := startBroker(t, nil)
	v3 := pahoClient(t, tb.addr, "v3-mixw-sub", nil)
	v3in := v3Inbox(t, v3, "mixw/#", 1)
	v5 := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mixw-sub", CleanStart: true}, nil)
	v5.sub(0, pahov5.SubscribeOptions{Topic: "mixw/#", QoS: 1})

	w3 := dialRaw(t, tb.addr)
	if ack := w3.connectWith(&packets.Connect{ClientID: "v3-mixw", CleanStart: true, KeepAlive: 60,
		WillFlag: true, WillTopic: "mixw/v3", WillQoS: 1, WillPayload: []byte("v3 died")}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	w3.conn.Close()
	if m := v5.recv(3 * time.Second); m.Topic != "mixw/v3" || string(m.Payload) != "v3 died" {
		t.Fatalf("v5 got %s %q", m.Topic, m.Payload)
	}
	if m := v3Recv(t, v3in); m.Topic() != "mixw/v3" {
		t.Fatalf("3.1.1 got %s", m.Topic())
	}

	w5 := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "v5-mixw", CleanStart: true, KeepAlive: 60,
		WillFlag: true, WillTopic: "mixw/v5", WillQoS: 1, WillPayload: []byte("v5 died")}
	p.WillProps.User = []packets.UserProperty{{Key: "reason", Value: "crash"}}
	if ack := w5.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	w5.conn.Close()
	if m := v3Recv(t, v3in); m.Topic() != "mixw/v5" || string(m.Payload()) != "v5 died" || m.Qos() != 1 {
		t.Fatalf("3.1.1 got %s %q QoS %d", m.Topic(), m.Payload(), m.Qos())
	}
	if m := v5.recv(3 * time.Second); m.Topic != "mixw/v5" || m.Properties == nil || m.Properties.User.Get("reason") != "crash" {
		t.Fatalf("v5 got %s %+v", m.Topic, m.Properties)
	}
}
