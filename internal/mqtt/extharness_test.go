package mqtt

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Helpers for the extended test files (limits, shutdown, $SYS, QoS, topic
// rules, leaks). They build on harness_test.go without changing it.

// extAuth adapts a function to Authenticator.
type extAuth func(context.Context, *ClientInfo, []byte) AuthResult

func (f extAuth) Authenticate(ctx context.Context, c *ClientInfo, pw []byte) AuthResult {
	return f(ctx, c, pw)
}

// extTopics adapts a function to TopicChecker.
type extTopics func(context.Context, *ClientInfo, TopicRequest) TopicResult

func (f extTopics) CheckTopic(ctx context.Context, c *ClientInfo, r TopicRequest) TopicResult {
	return f(ctx, c, r)
}

// extSink is an EventSink that records a copy of what tests look at.
type extSink struct {
	mask  EventMask
	mu    sync.Mutex
	evs   []extEvent
	wants int // calls to Wants
}

type extEvent struct {
	Type     EventType
	Topic    string
	ClientID string
	TargetID string
	Retain   bool
}

func (s *extSink) Wants() EventMask {
	s.mu.Lock()
	s.wants++
	s.mu.Unlock()
	return s.mask
}

func (s *extSink) Event(e *Event) {
	ev := extEvent{Type: e.Type, Topic: e.Topic, TargetID: e.TargetID}
	if e.Client != nil {
		ev.ClientID = e.Client.ClientID
	}
	if e.Message != nil {
		ev.Retain = e.Message.Retain
	}
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
}

func (s *extSink) events() []extEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]extEvent(nil), s.evs...)
}

func (s *extSink) count(t EventType) int {
	n := 0
	for _, e := range s.events() {
		if e.Type == t {
			n++
		}
	}
	return n
}

// extPacketID returns the packet identifier of an acknowledgement.
func extPacketID(p packets.Packet) uint16 {
	switch p := p.(type) {
	case *packets.Puback:
		return p.PacketID
	case *packets.Pubrec:
		return p.PacketID
	case *packets.Pubrel:
		return p.PacketID
	case *packets.Pubcomp:
		return p.PacketID
	case *packets.Suback:
		return p.PacketID
	case *packets.Unsuback:
		return p.PacketID
	case *packets.Publish:
		return p.PacketID
	}
	return 0
}

// extExpect reads the next packet and fails unless it has type typ and
// packet id pid.
func extExpect(c *rawClient, typ packets.Type, pid uint16) packets.Packet {
	c.t.Helper()
	p := c.read(2 * time.Second)
	if p.Type() != typ {
		c.t.Fatalf("got %v %+v, want %v id %d", p.Type(), p, typ, pid)
	}
	if id := extPacketID(p); id != pid {
		c.t.Fatalf("%v id %d, want %d", typ, id, pid)
	}
	return p
}

// extSubscribe sends one SUBSCRIBE with several filters and returns the
// SUBACK codes.
func extSubscribe(c *rawClient, pid uint16, subs ...packets.Subscription) []packets.ReasonCode {
	c.t.Helper()
	c.send(&packets.Subscribe{PacketID: pid, Subscriptions: subs})
	ack := extExpect(c, packets.SUBACK, pid).(*packets.Suback)
	return ack.ReasonCodes
}

// extConnect sends a full CONNECT and returns the CONNACK.
func extConnect(c *rawClient, p *packets.Connect) *packets.Connack {
	c.t.Helper()
	if p.ProtocolName == "" {
		p.ProtocolName = "MQTT"
	}
	if p.ProtocolVersion == 0 {
		p.ProtocolVersion = packets.V311
	}
	c.send(p)
	pk := c.read(2 * time.Second)
	ack, ok := pk.(*packets.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK, got %v", pk.Type())
	}
	return ack
}

// extDisconnect sends DISCONNECT and waits for the broker to close.
func extDisconnect(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Disconnect{})
	c.expectClosed(2 * time.Second)
}

// extPaho connects a paho client like pahoClient and also returns the
// CONNACK's session present flag.
func extPaho(t *testing.T, url, id string, mod func(*paho.ClientOptions)) (paho.Client, bool) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(3 * time.Second).SetKeepAlive(30 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

// extWait waits for a paho token.
func extWait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// extClose closes the broker with a bounded context, failing the test if
// Close does not return at all (a hang would otherwise stall the run).
func extClose(t *testing.T, b *Broker, ctxTimeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(ctxTimeout + 5*time.Second):
		t.Fatalf("Broker.Close did not return %v after its context ended", 5*time.Second)
		return nil
	}
}

// extDialFails reports whether a TCP dial to addr is refused.
func extDialFails(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	conn.Close()
	return false
}
