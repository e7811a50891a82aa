package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// A node with a store recovers retained messages from it at Start; those
// set or cleared on other nodes while it was down must not win over the
// cluster's: Resync applies the bucket again.
func TestResyncOverStaleStore(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	start := func() (*mqtt.Broker, *Node) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n, err := Open(ctx, Options{URLs: []string{ns.ClientURL()}, Name: "persisted", NodeLease: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		b, err := mqtt.New(mqtt.Options{Name: "persisted", Store: st, Cluster: n,
			Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		if err := n.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		return b, n
	}
	stop := func(b *mqtt.Broker, n *Node) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
		n.Close()
	}
	b, n := start()
	if _, err := b.Publish(mqtt.PublishRequest{Topic: "gone", Payload: []byte("old"), Retain: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(mqtt.PublishRequest{Topic: "changed", Payload: []byte("old"), Retain: true}); err != nil {
		t.Fatal(err)
	}
	stop(b, n)

	other := startNode(t, ns, "other")
	other.broker.Publish(mqtt.PublishRequest{Topic: "gone", Payload: []byte{}, Retain: true})
	other.broker.Publish(mqtt.PublishRequest{Topic: "changed", Payload: []byte("new"), Retain: true})

	b, n = start()
	defer stop(b, n)
	if m, ok := b.Retained("gone"); ok {
		t.Errorf("cleared elsewhere, still retained here: %q", m.Payload)
	}
	if m, ok := b.Retained("changed"); !ok || string(m.Payload) != "new" {
		t.Errorf("changed elsewhere: here %v %v, want new", m, ok)
	}
}
