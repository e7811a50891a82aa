//go:build unix

package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// v5Client connects an MQTT 5 client with the given Session Expiry
// Interval and Clean Start; its messages go to the returned channel.
func v5Client(t *testing.T, addr, id string, expiry uint32, clean bool) (*pahov5.Client, <-chan *pahov5.Publish, *pahov5.Connack) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *pahov5.Publish, 100)
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: 10 * time.Second,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, KeepAlive: 30, CleanStart: clean,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("%s: connect: %v", id, err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, msgs, ack
}

// An MQTT 5 session outlives kill -9 with its Subscription Identifier, and
// the message queued for it keeps its properties; a session whose expiry
// ran out while the broker was down is not restored (expiry counts across
// the downtime).
func TestPersistV5SessionExpiryAcrossKill9(t *testing.T) {
	const shortExpiry = 2 // seconds
	ctx := context.Background()
	b := newBrokerProc(t, "")
	b.start()

	sub, _, _ := v5Client(t, b.mqttAddr, "v5-keep", 3600, true)
	subID := 5
	if _, err := sub.Subscribe(ctx, &pahov5.Subscribe{Properties: &pahov5.SubscribeProperties{SubscriptionIdentifier: &subID},
		Subscriptions: []pahov5.SubscribeOptions{{Topic: "v/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(&pahov5.Disconnect{})
	short, _, _ := v5Client(t, b.mqttAddr, "v5-short", shortExpiry, true)
	if _, err := short.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "v/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	short.Disconnect(&pahov5.Disconnect{})
	// The broker starts v5-short's expiry when it handles the DISCONNECT,
	// which can come after Disconnect returns: a kill before that leaves
	// the session online in the store, and its expiry starts at restart.
	for end := time.Now().Add(10 * time.Second); !strings.Contains(b.logs(), `msg="client disconnected" client_id=v5-short`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the broker did not log v5-short's disconnect")
		}
	}
	shortGone := time.Now()

	pub, _, _ := v5Client(t, b.mqttAddr, "v5-pub", 0, true)
	if _, err := pub.Publish(ctx, &pahov5.Publish{Topic: "v/1", QoS: 1, Payload: []byte("hello"),
		Properties: &pahov5.PublishProperties{ContentType: "text/plain", User: pahov5.UserProperties{{Key: "k", Value: "v"}}}}); err != nil {
		t.Fatal(err)
	}
	b.kill9()
	// Down for longer than v5-short's expiry: it must be gone at restart.
	time.Sleep(time.Until(shortGone.Add(shortExpiry*time.Second + 500*time.Millisecond)))
	b.start()

	sub, msgs, ack := v5Client(t, b.mqttAddr, "v5-keep", 3600, false)
	defer sub.Disconnect(&pahov5.Disconnect{})
	if !ack.SessionPresent {
		t.Fatal("v5-keep: session present 0 after kill -9")
	}
	select {
	case m := <-msgs:
		p := m.Properties
		if m.Topic != "v/1" || string(m.Payload) != "hello" || m.QoS != 1 || p == nil || p.ContentType != "text/plain" ||
			p.User.Get("k") != "v" || p.SubscriptionIdentifier == nil || *p.SubscriptionIdentifier != subID {
			t.Errorf("queued message after kill -9: %+v, properties %+v; want v/1 hello QoS 1, content type, user property k=v, subscription id %d", m, p, subID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("v5-keep got nothing after the restart")
	}

	short, _, ack = v5Client(t, b.mqttAddr, "v5-short", shortExpiry, false)
	defer short.Disconnect(&pahov5.Disconnect{})
	if ack.SessionPresent {
		t.Errorf("v5-short: session present after %s offline with a %ds expiry; its expiry did not count while the broker was down", time.Since(shortGone).Round(time.Second), shortExpiry)
	}
}
