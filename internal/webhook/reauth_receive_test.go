package webhook

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
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
	tp := &tokenPlugin{pending: map[string]string{}}
	var topicCalls atomic.Int32
	f := newFake(t)
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		rec := &grantRecorder{ResponseWriter: w}
		tp.serve(rec, r)
		steps := tp.seen()
		if rec.allow == nil {
			w.Write(rec.body)
			return
		}
		all := map[string]any{"topic": "reports/#", "actions": []string{"publish", "subscribe", "receive"}, "result": "allow"}
		acl := []map[string]any{all}
		if len(steps) > 0 && steps[len(steps)-1].Reauth {
			deny := map[string]any{"topic": "reports/secret/#", "actions": []string{"receive"}, "result": "deny"}
			acl = []map[string]any{deny, all}
		}
		rec.allow["acl"] = acl
		json.NewEncoder(w).Encode(rec.allow)
	})
	f.handle("/topic_filtering", func(w http.ResponseWriter, _ *http.Request) {
		topicCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":"deny"}`))
	})
	p := newPlugin(t, f.url(), nil)
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{p.Alias(): {Plugin: p, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{p.Alias()}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{p.Alias()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)

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
