package webhook

import (
	"context"
	"net"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// A re-authentication that takes away a receive grant stops deliveries on
// a subscription made before it: the broker decides a receive its grants
// allow without asking the topic chain, and must see the new grants from
// the next message on. The plugin's allow at CONNECT grants everything on
// reports/#; at re-authentication it first denies receive on
// reports/secret/#. The client's own messages come back to it in order,
// so once reports/open arrives, reports/secret/b would have arrived before
// it had it been delivered.
func TestReauthRemovingReceiveGrantStopsDeliveries(t *testing.T) {
	addr, topicCalls := grantsBroker(t, func(reauth bool) []map[string]any {
		all := map[string]any{"topic": "reports/#", "actions": []string{"publish", "subscribe", "receive"}, "result": "allow"}
		if !reauth {
			return []map[string]any{all}
		}
		deny := map[string]any{"topic": "reports/secret/#", "actions": []string{"receive"}, "result": "deny"}
		return []map[string]any{deny, all}
	})

	got := make(chan string, 16)
	c := connectTokenReceiving(t, addr, "grant-recv", got)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if _, err := c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "reports/#", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	publish := func(topic string) {
		t.Helper()
		resp, err := c.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		if resp == nil || resp.ReasonCode != 0 {
			t.Fatalf("publish %s: %+v, %v", topic, resp, err)
		}
	}
	next := func() string {
		t.Helper()
		select {
		case topic := <-got:
			return topic
		case <-time.After(bound):
			t.Fatal("no delivery")
			return ""
		}
	}
	publish("reports/secret/a")
	if topic := next(); topic != "reports/secret/a" {
		t.Fatalf("before re-authentication got %q, want reports/secret/a", topic)
	}
	resp, err := c.Authenticate(ctx, &pahov5.Auth{ReasonCode: 0x19,
		Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte("hello")}})
	if err != nil || !resp.Success {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	publish("reports/secret/b")
	publish("reports/open")
	if topic := next(); topic != "reports/open" {
		t.Fatalf("after the re-authentication denied receive on reports/secret/# got %q, want reports/open", topic)
	}
	if n := topicCalls.Load(); n != 0 {
		t.Fatalf("%d topic_filtering calls, want 0: the grants decide", n)
	}
}

// connectTokenReceiving is connectToken with the topics of the messages
// the client receives sent to got.
func connectTokenReceiving(t *testing.T, addr, id string, got chan<- string) *pahov5.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound, AuthHandler: &tokenAuther{},
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			got <- pr.Packet.Topic
			return true, nil
		}}})
	cp := &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{AuthMethod: "TOKEN", AuthData: []byte("hello")}}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if ack, err := c.Connect(ctx, cp); err != nil {
		conn.Close()
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c
}
