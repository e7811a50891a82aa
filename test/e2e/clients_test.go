package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const packetWait = 15 * time.Second // any single MQTT exchange

// inbox records the messages a client receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (b *inbox) add(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, topic+" "+string(payload))
}

func (b *inbox) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

func (b *inbox) has(topic, payload string) bool {
	for _, m := range b.snapshot() {
		if m == topic+" "+payload {
			return true
		}
	}
	return false
}

// onTopic lists what arrived on topic.
func (b *inbox) onTopic(topic string) []string {
	var out []string
	for _, m := range b.snapshot() {
		if strings.HasPrefix(m, topic+" ") {
			out = append(out, m)
		}
	}
	return out
}

func (b *inbox) wait(t *testing.T, who, topic, payload string) {
	t.Helper()
	eventually(t, eventuallyFor, fmt.Sprintf("%s receives %q on %s", who, payload, topic), func() (bool, string) {
		return b.has(topic, payload), fmt.Sprintf("received %q", b.snapshot())
	})
}

// v3 is an MQTT 3.1.1 client (github.com/eclipse/paho.mqtt.golang).
type v3 struct {
	c  mqtt.Client
	in *inbox
}

// connectV3 connects; it returns the CONNACK return code and the client
// (nil when refused).
func connectV3(t *testing.T, addr, id, user, pass string) (*v3, byte) {
	t.Helper()
	in := &inbox{}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(packetWait).SetWriteTimeout(packetWait).SetKeepAlive(60 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { in.add(m.Topic(), m.Payload()) })
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(packetWait + 5*time.Second) {
		t.Fatalf("3.1.1 CONNECT %s: no CONNACK within %v", id, packetWait)
	}
	code := tok.(*mqtt.ConnectToken).ReturnCode()
	if tok.Error() != nil && code == 0 {
		t.Fatalf("3.1.1 CONNECT %s: %v (no refusal code)", id, tok.Error())
	}
	if code != 0 {
		return nil, code
	}
	cl := &v3{c: c, in: in}
	t.Cleanup(func() { c.Disconnect(50) })
	return cl, 0
}

func mustConnectV3(t *testing.T, addr, id, user, pass string) *v3 {
	t.Helper()
	c, code := connectV3(t, addr, id, user, pass)
	if code != 0 {
		t.Fatalf("3.1.1 CONNECT %s as %s: return code 0x%02x, want 0x00", id, user, code)
	}
	return c
}

// subscribe sends one SUBSCRIBE with every filter at QoS 1 and returns the
// SUBACK code of each.
func (c *v3) subscribe(t *testing.T, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.c.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(packetWait) {
		t.Fatalf("3.1.1 SUBSCRIBE %v: no SUBACK within %v", filters, packetWait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("3.1.1 SUBSCRIBE %v: %v", filters, err)
	}
	return tok.(*mqtt.SubscribeToken).Result()
}

// publish sends at QoS 1 and waits for the PUBACK.
func (c *v3) publish(t *testing.T, topic, payload string, retain bool) {
	t.Helper()
	tok := c.c.Publish(topic, 1, retain, payload)
	if !tok.WaitTimeout(packetWait) {
		t.Fatalf("3.1.1 PUBLISH %s: no PUBACK within %v", topic, packetWait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("3.1.1 PUBLISH %s: %v", topic, err)
	}
}

// v5 is an MQTT 5.0 client (github.com/eclipse/paho.golang).
type v5 struct {
	c  *paho.Client
	in *inbox
}

// connectV5 connects; it returns the CONNACK reason code and the client
// (nil when refused).
func connectV5(t *testing.T, addr, id, user, pass string) (*v5, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, packetWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	in := &inbox{}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			in.add(pr.Packet.Topic, pr.Packet.Payload)
			return true, nil
		}},
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {},
		PacketTimeout:      packetWait,
	})
	cp := &paho.Connect{ClientID: id, KeepAlive: 60, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if ack == nil {
		conn.Close()
		t.Fatalf("5.0 CONNECT %s: no CONNACK: %v", id, err)
	}
	if ack.ReasonCode != 0 {
		return nil, ack.ReasonCode
	}
	if err != nil {
		t.Fatalf("5.0 CONNECT %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return &v5{c: c, in: in}, 0
}

func mustConnectV5(t *testing.T, addr, id, user, pass string) *v5 {
	t.Helper()
	c, code := connectV5(t, addr, id, user, pass)
	if code != 0 {
		t.Fatalf("5.0 CONNECT %s as %s: reason code 0x%02x, want 0x00", id, user, code)
	}
	return c
}

// subscribe sends one SUBSCRIBE with every filter at QoS 1 and returns the
// SUBACK reason codes in order.
func (c *v5) subscribe(t *testing.T, filters ...string) []byte {
	t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	ack, err := c.c.Subscribe(ctx, s)
	if ack == nil { // a refused filter comes with the SUBACK and an error
		t.Fatalf("5.0 SUBSCRIBE %v: no SUBACK: %v", filters, err)
	}
	if len(ack.Reasons) != len(filters) {
		t.Fatalf("5.0 SUBSCRIBE %v: SUBACK has %d codes %v", filters, len(ack.Reasons), ack.Reasons)
	}
	return ack.Reasons
}

func (c *v5) unsubscribe(t *testing.T, filters ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	if _, err := c.c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		t.Fatalf("5.0 UNSUBSCRIBE %v: %v", filters, err)
	}
}

// publish sends at QoS 1 and returns the PUBACK reason code.
func (c *v5) publish(t *testing.T, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	resp, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if resp == nil { // a refusal comes with the PUBACK and an error
		t.Fatalf("5.0 PUBLISH %s: no PUBACK: %v", topic, err)
	}
	return resp.ReasonCode
}

func (c *v5) disconnect(t *testing.T) {
	t.Helper()
	if err := c.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatalf("5.0 DISCONNECT: %v", err)
	}
}
