package mqtt

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Close with raw, paho TCP and paho WebSocket clients connected returns nil
// within its context, every client sees its connection closed, no will is
// published (not routed to the offline persistent watcher, not retained, no
// retained_message event), a second Close is an error, and the listeners no
// longer accept.
func TestGracefulShutdown(t *testing.T) {
	sink := &recordingSink{mask: EventMask(0).With(EventRetainedMessage).With(EventMessageBroadcast).With(EventClientDisconnected)}
	tb := startBroker(t, func(o *Options) {
		o.Listeners = append(o.Listeners, ListenerConfig{Name: "ws", Type: "ws", Bind: "127.0.0.1:0"})
		o.Hooks.Events = sink
	})
	wsAddr := tb.Addr("ws").String()

	// An offline persistent session subscribed to the wills: a will
	// published during shutdown would be queued for it.
	watch := dialRaw(t, tb.addr)
	watch.mustConnect("sd-watch", false)
	watch.subscribe(1, "will/#", 1)
	watch.disconnect()

	raw := dialRaw(t, tb.addr)
	if ack := raw.connectWith(&packets.Connect{ClientID: "sd-raw", CleanStart: true, KeepAlive: 30,
		WillFlag: true, WillTopic: "will/raw", WillPayload: []byte("raw gone"), WillQoS: 1, WillRetain: true}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	lost := make(chan string, 2)
	for name, url := range map[string]string{"tcp": "tcp://" + tb.addr, "ws": "ws://" + wsAddr + "/mqtt"} {
		pahoConnect(t, url, "sd-paho-"+name, func(o *paho.ClientOptions) {
			o.SetWill("will/paho-"+name, "paho gone", 1, true).
				SetConnectionLostHandler(func(paho.Client, error) { lost <- name })
		})
	}
	// A socket that never sent CONNECT.
	idle := dialRaw(t, tb.addr)
	waitFor(t, "3 clients", func() bool { return tb.Stats().ClientsConnected == 3 })

	if err := closeBroker(t, tb.Broker, 5*time.Second); err != nil {
		t.Fatalf("Close: %v, want nil (every connection ends well within the context)", err)
	}
	raw.expectClosed(2 * time.Second)
	idle.expectClosed(2 * time.Second)
	for range 2 {
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("a paho client did not see its connection closed")
		}
	}

	st := tb.Stats()
	if st.ClientsConnected != 0 {
		t.Fatalf("connected = %d after Close", st.ClientsConnected)
	}
	if st.Queued != 0 || st.Retained != 0 {
		t.Fatalf("a will was published on shutdown: queued %d retained %d", st.Queued, st.Retained)
	}
	if n := sink.count(EventRetainedMessage) + sink.count(EventMessageBroadcast); n != 0 {
		t.Fatalf("%d message events during shutdown: %+v", n, sink.events())
	}
	if n := sink.count(EventClientDisconnected); n != 4 {
		t.Fatalf("disconnected events = %d, want 4", n)
	}

	if err := closeBroker(t, tb.Broker, time.Second); err == nil {
		t.Fatal("second Close returned nil")
	}
	if tb.Ready() {
		t.Fatal("Ready after Close")
	}
	for _, a := range []string{tb.addr, wsAddr} {
		if !dialRefused(a) {
			t.Fatalf("dial %s succeeded after Close", a)
		}
	}
}

// The Authenticator's context ends when the broker closes: an Authenticator
// waiting on ctx.Done returns, its client is closed without being accepted
// (or, when the hook still says yes, accepted and closed at once), and Close
// returns nil instead of hanging on the connection.
func TestAuthContextCancelledOnClose(t *testing.T) {
	entered := make(chan string, 2)
	returned := make(chan error, 2)
	release := make(chan struct{})
	defer close(release) // never leave a hook blocked past the test
	auth := authFunc(func(ctx context.Context, c *ClientInfo, _ []byte) AuthResult {
		if c.ClientID == "ok" {
			return AuthResult{Allow: true}
		}
		entered <- c.ClientID
		select {
		case <-ctx.Done():
			returned <- ctx.Err()
		case <-release:
			returned <- errors.New("hook released by the test: its context never ended")
		}
		return AuthResult{Allow: c.ClientID == "blocked-allow", Reason: "shutting down"}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	ok := dialRaw(t, tb.addr)
	ok.mustConnect("ok", true)
	blocked := map[string]*rawClient{}
	for _, id := range []string{"blocked-deny", "blocked-allow"} {
		c := dialRaw(t, tb.addr)
		c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: id, CleanStart: true,
			WillFlag: true, WillTopic: "w/" + id, WillPayload: []byte("x"), WillRetain: true})
		blocked[id] = c
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(2 * time.Second):
			t.Fatal("Authenticate not called")
		}
	}

	if err := closeBroker(t, tb.Broker, 5*time.Second); err != nil {
		t.Fatalf("Close: %v, want nil", err)
	}
	for range 2 {
		select {
		case err := <-returned:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("hook returned with %v, want its context cancelled", err)
			}
		case <-time.After(time.Second):
			t.Fatal("Authenticate still blocked after Close returned")
		}
	}
	ok.expectClosed(2 * time.Second)
	for id, c := range blocked {
		// A refused client may get its CONNACK first; the denied one must
		// not be accepted.
		for {
			p, err := c.tryRead(2 * time.Second)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: connection still open after Close", id)
				}
				break
			}
			ack, isAck := p.(*packets.Connack)
			if !isAck {
				t.Fatalf("%s: got %v", id, p.Type())
			}
			if id == "blocked-deny" && ack.ReasonCode == 0 {
				t.Fatalf("%s: accepted although the hook denied it", id)
			}
		}
	}
	if st := tb.Stats(); st.Retained != 0 {
		t.Fatalf("retained = %d: a will was published on shutdown", st.Retained)
	}
}

// A client that stops reading leaves its writer blocked in a socket write.
// Close cannot flush it: once the context ends Close cuts the connection,
// returns the context's error, and every goroutine has ended; the client
// that does read was still closed properly.
func TestCloseCutsStuckWriter(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxOutboundBytes = 64 << 10 })
	stuck := dialRaw(t, tb.addr)
	if tc, ok := stuck.conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	stuck.mustConnect("stuck", true)
	stuck.subscribe(1, "fill", 0)
	fine := dialRaw(t, tb.addr)
	fine.mustConnect("fine", true)
	payload := make([]byte, 16<<10)
	pending := func() int { // bytes waiting in the stuck client's write buffer
		s, ok := tb.store.Get("stuck")
		if !ok {
			return 0
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.client == nil {
			return 0
		}
		return len(s.client.out)
	}
	// Publish, one acknowledged message at a time, until messages for the
	// stuck client are being dropped, its buffer holds data, and for 300 ms
	// no write returned: its writer is blocked in Write on a full socket.
	for i, run, checks := 0, 0, 0; ; i++ {
		if i == 4000 {
			t.Fatal("the stuck client's buffer never filled")
		}
		before := tb.Stats().DroppedQoS0
		id := uint16(i%65535 + 1)
		fine.send(&packets.Publish{Topic: "fill", Payload: payload, QoS: 1, PacketID: id})
		fine.expect(packets.PUBACK, id) // routed before acknowledged
		if tb.Stats().DroppedQoS0 > before {
			run++
		} else {
			run = 0
		}
		if run >= 20 {
			out := tb.Stats().BytesOut
			time.Sleep(300 * time.Millisecond)
			if tb.Stats().BytesOut == out && pending() > 0 {
				break
			}
			if checks++; checks == 10 {
				t.Fatal("the stuck client's writer kept making progress")
			}
			run = 0
		}
	}
	err := closeBroker(t, tb.Broker, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the context's deadline error", err)
	}
	fine.expectClosed(2 * time.Second)
	if n := tb.nconns.Load(); n != 0 {
		t.Fatalf("%d connections still counted after Close returned", n)
	}
	if st := tb.Stats(); st.ClientsConnected != 0 {
		t.Fatalf("connected = %d after Close returned", st.ClientsConnected)
	}
}
