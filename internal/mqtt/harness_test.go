package mqtt

// The test harness, one for every test file in this package, in three parts:
//   - harness_test.go: the broker under test, hook adapters, an event
//     recorder and waits on asynchronous effects;
//   - harness_raw_test.go: rawClient, MQTT byte by byte over a real socket
//     (3.1.1 or 5.0), for exact bytes and hostile input;
//   - harness_paho_test.go: real client libraries, paho.mqtt.golang (3.1.1)
//     and paho.golang (5.0).

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store/memstore"
)

// testBroker is a broker on a loopback port, closed when the test ends.
type testBroker struct {
	*Broker
	t    *testing.T
	addr string
}

// startBroker starts a broker with one TCP listener on 127.0.0.1:0. mod may
// adjust the options before start.
func startBroker(t *testing.T, mod func(*Options)) *testBroker {
	t.Helper()
	opts := Options{
		Name:        "test",
		Listeners:   []ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
	}
	if mod != nil {
		mod(&opts)
	}
	if opts.Store == nil && os.Getenv("MQTTD_TEST_STORE") == "memory" {
		// The whole suite against a store: every behaviour must hold with
		// persistence wired in, not only in the tests written for it.
		ms := memstore.New()
		opts.Store = ms
		t.Cleanup(func() { ms.Close() }) // after the broker's Close (cleanups run last-in first-out)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tb := &testBroker{Broker: b, t: t}
	if a := b.Addr(opts.Listeners[0].Name); a != nil {
		tb.addr = a.String()
	}
	t.Cleanup(func() {
		if b.closing.Load() {
			return // the test closed it itself
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tb
}

func (tb *testBroker) String() string { return fmt.Sprintf("broker@%s", tb.addr) }

// closeBroker closes the broker with a bounded context, failing the test if
// Close does not return at all (a hang would otherwise stall the run).
func closeBroker(t *testing.T, b *Broker, ctxTimeout time.Duration) error {
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

// dialRefused reports whether a TCP dial to addr is refused.
func dialRefused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	conn.Close()
	return false
}

// retainedPayload returns the payload retained on topic, and whether there
// is one.
func retainedPayload(b *Broker, topic string) (string, bool) {
	var got string
	found := false
	b.retain.Match(topic, func(_ string, m *Message) { got, found = string(m.Payload), true })
	return got, found
}

// waitFor polls cond until it holds or the deadline passes. It measures no
// performance: it only bounds how long an asynchronous effect may take, so
// the bound is generous for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSessionGone waits until the session of client id has left the store.
func waitSessionGone(t *testing.T, tb *testBroker, id string) {
	t.Helper()
	waitFor(t, "session "+id+" to be removed", func() bool { _, ok := tb.store.Get(id); return !ok })
}

// waitOffline waits until the session of client id is kept with no
// connection attached: the broker has handled the connection's end.
func waitOffline(t *testing.T, tb *testBroker, id string) {
	t.Helper()
	waitFor(t, "session "+id+" to go offline", func() bool {
		s, ok := tb.store.Get(id)
		if !ok {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.client == nil && !s.offlineSince.IsZero()
	})
}

// authFunc adapts a function to Authenticator.
type authFunc func(context.Context, *ClientInfo, []byte) AuthResult

func (f authFunc) Authenticate(ctx context.Context, c *ClientInfo, pw []byte) AuthResult {
	return f(ctx, c, pw)
}

// topicFunc adapts a function to TopicChecker.
type topicFunc func(context.Context, *ClientInfo, TopicRequest) TopicResult

func (f topicFunc) CheckTopic(ctx context.Context, c *ClientInfo, r TopicRequest) TopicResult {
	return f(ctx, c, r)
}

// denyUserTopics is a topic checker that denies user the given action on
// every topic under prefix and allows everything else.
func denyUserTopics(user string, action Action, prefix string) topicFunc {
	return func(_ context.Context, c *ClientInfo, r TopicRequest) TopicResult {
		if c.Username == user && r.Action == action && strings.HasPrefix(r.Topic, prefix) {
			return TopicResult{Reason: "not yours"}
		}
		return TopicResult{Allow: true}
	}
}

// recordingSink is an EventSink that records a copy of what tests look at.
type recordingSink struct {
	mask  EventMask
	mu    sync.Mutex
	evs   []recordedEvent
	wants int // calls to Wants
}

type recordedEvent struct {
	Type     EventType
	Name     string // the event name, with ":" and the packet type for packet events
	Topic    string
	ClientID string
	TargetID string
	Retain   bool
}

// allEvents returns a mask with every event type.
func allEvents() EventMask {
	var m EventMask
	for _, et := range EventTypes() {
		m = m.With(et)
	}
	return m
}

func (s *recordingSink) Wants() EventMask {
	s.mu.Lock()
	s.wants++
	s.mu.Unlock()
	return s.mask
}

func (s *recordingSink) Event(e *Event) {
	ev := recordedEvent{Type: e.Type, Name: e.Type.String(), Topic: e.Topic, TargetID: e.TargetID}
	if e.Packet != nil {
		ev.Name += ":" + e.Packet.Type().String()
	}
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

func (s *recordingSink) events() []recordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedEvent(nil), s.evs...)
}

// names returns the recorded event names in order.
func (s *recordingSink) names() []string {
	evs := s.events()
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Name
	}
	return out
}

func (s *recordingSink) count(t EventType) int {
	n := 0
	for _, e := range s.events() {
		if e.Type == t {
			n++
		}
	}
	return n
}

// waitDisconnected waits until the sink saw client id's disconnect event:
// the broker emits it after the connection's will was handled.
func waitDisconnected(t *testing.T, sink *recordingSink, id string) {
	t.Helper()
	waitFor(t, id+" disconnected", func() bool {
		for _, e := range sink.events() {
			if e.Type == EventClientDisconnected && e.ClientID == id {
				return true
			}
		}
		return false
	})
}
