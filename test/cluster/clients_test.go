//go:build unix

package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// opWithin bounds one MQTT operation (CONNECT, SUBSCRIBE, a publish's
// acknowledgement) and waitWithin a wait for messages to arrive.
const (
	opWithin   = 10 * time.Second
	waitWithin = 20 * time.Second
)

// received is one message a client got.
type received struct {
	topic, payload string
	qos            byte
	retained       bool
}

// collector records what a client's subscriptions deliver.
type collector struct {
	mu   sync.Mutex
	msgs []received
}

func (c *collector) handle(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, received{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
}

func (c *collector) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// has reports whether a message with payload arrived.
func (c *collector) has(payload string) bool {
	return slices.ContainsFunc(c.all(), func(r received) bool { return r.payload == payload })
}

// eventually polls cond until it holds or waitWithin passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitWithin)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitWithin, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a connected MQTT 3.1.1 client (no automatic reconnection) and
// what it received.
type client struct {
	paho.Client
	t    *testing.T
	id   string
	got  *collector
	lost chan time.Time // gets the time the broker closed the connection
}

func connect(t *testing.T, n *node, id string) *client {
	t.Helper()
	c := &client{t: t, id: id, got: &collector{}, lost: make(chan time.Time, 1)}
	o := paho.NewClientOptions().AddBroker("tcp://" + n.mqtt).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(opWithin).SetKeepAlive(30 * time.Second).SetOrderMatters(true).
		SetDefaultPublishHandler(c.got.handle).
		SetConnectionLostHandler(func(paho.Client, error) { c.lost <- time.Now() })
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(opWithin) || tok.Error() != nil {
		t.Fatalf("%s: CONNECT to %s (%s): %v", id, n.name, n.mqtt, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(50)
		}
	})
	return c
}

func (c *client) subscribe(filter string, qos byte) {
	c.t.Helper()
	// No callback: paho would call one per matching filter; the default
	// handler runs once per message the broker sends.
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(opWithin) || tok.Error() != nil {
		c.t.Fatalf("%s: SUBSCRIBE %s: %v", c.id, filter, tok.Error())
	}
	if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[filter] == 0x80 {
		c.t.Fatalf("%s: SUBSCRIBE %s refused", c.id, filter)
	}
}

// publish sends a message and waits for its acknowledgement (QoS 1/2) or
// for it to be written (QoS 0).
func (c *client) publish(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(opWithin) || tok.Error() != nil {
		c.t.Fatalf("%s: PUBLISH %s QoS %d: %v", c.id, topic, qos, tok.Error())
	}
}

func payloads(rs []received) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.payload
	}
	return out
}

func seqPayload(qos byte, i int) string { return fmt.Sprintf("q%d-%03d", qos, i) }
