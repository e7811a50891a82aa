package mqtt

import (
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Authenticate receives the CONNECT's user name, password and client id,
// and where the client came from: its remote address, the listener's name
// and the transport, over TCP and WebSocket.
func TestAuthenticatorReceivesClientInfo(t *testing.T) {
	type call struct {
		info ClientInfo
		pw   string
	}
	calls := make(chan call, 4)
	auth := authFunc(func(_ context.Context, c *ClientInfo, pw []byte) AuthResult {
		calls <- call{*c, string(pw)}
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Auth = auth
		o.Listeners = append(o.Listeners, ListenerConfig{Name: "web", Type: "ws", Bind: "127.0.0.1:0", Path: "/mq"})
	})

	c := dialRaw(t, tb.addr)
	if ack := c.connectWith(&packets.Connect{ClientID: "auth-info", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("s3cret")}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	got := <-calls
	want := ClientInfo{ClientID: "auth-info", Username: "alice", RemoteAddr: c.conn.LocalAddr().String(),
		Listener: "tcp", Transport: "tcp", ProtocolVersion: 4, CleanStart: true, KeepAlive: 30}
	if got.pw != "s3cret" {
		t.Errorf("password %q", got.pw)
	}
	if got.info.ClientID != want.ClientID || got.info.Username != want.Username || got.info.RemoteAddr != want.RemoteAddr ||
		got.info.Listener != want.Listener || got.info.Transport != want.Transport || got.info.ProtocolVersion != want.ProtocolVersion ||
		got.info.CleanStart != want.CleanStart || got.info.KeepAlive != want.KeepAlive || got.info.AssignedID {
		t.Errorf("ClientInfo\n got %+v\nwant %+v", got.info, want)
	}

	pahoConnect(t, "ws://"+tb.Addr("web").String()+"/mq", "auth-ws", func(o *paho.ClientOptions) {
		o.SetUsername("bob").SetPassword("pw2").SetCleanSession(false)
	})
	got = <-calls
	if got.info.ClientID != "auth-ws" || got.info.Username != "bob" || got.pw != "pw2" ||
		got.info.Listener != "web" || got.info.Transport != "ws" || got.info.CleanStart {
		t.Errorf("WebSocket ClientInfo %+v password %q", got.info, got.pw)
	}
	if host, _, err := net.SplitHostPort(got.info.RemoteAddr); err != nil || host != "127.0.0.1" {
		t.Errorf("WebSocket remote address %q, want the peer's 127.0.0.1:port", got.info.RemoteAddr)
	}
}

// A denying Authenticator's MQTT 5 reason code is mapped to the 3.1.1
// CONNACK code: 0x86 bad user name or password → 0x04, every other code
// (outages and quotas included) or none → 0x05 not authorized, so a refused
// 3.1.1 client learns only whether its credentials were wrong. The broker's
// own refusals map more codes (0x88 to 0x03); an authenticator's do not. The
// refused client gets session present 0 ([MQTT-3.2.2-4]), is closed
// ([MQTT-3.2.2-5]), and leaves no session.
func TestAuthDenyReasonCodes(t *testing.T) {
	auth := authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
		switch c.Username {
		case "badpw":
			return AuthResult{ReasonCode: 0x86, Reason: "bad password"}
		case "notauth":
			return AuthResult{ReasonCode: 0x87, Reason: "banned"}
		case "down":
			return AuthResult{ReasonCode: 0x88, Reason: "auth plugin unavailable"}
		case "busy":
			return AuthResult{ReasonCode: 0x89, Reason: "auth plugin overloaded"}
		case "badid":
			return AuthResult{ReasonCode: 0x85, Reason: "no such device"}
		case "quota":
			return AuthResult{ReasonCode: 0x97, Reason: "too many logins"}
		case "banned":
			return AuthResult{ReasonCode: 0x8A, Reason: "banned"}
		case "nocode":
			return AuthResult{Reason: "no"}
		}
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	for _, tc := range []struct {
		user string
		code packets.ReasonCode
	}{
		{"badpw", packets.ConnRefusedBadUsernameOrPassword},
		{"notauth", packets.ConnRefusedNotAuthorized},
		{"down", packets.ConnRefusedNotAuthorized},
		{"busy", packets.ConnRefusedNotAuthorized},
		{"badid", packets.ConnRefusedNotAuthorized},
		{"quota", packets.ConnRefusedNotAuthorized},
		{"banned", packets.ConnRefusedNotAuthorized},
		{"nocode", packets.ConnRefusedNotAuthorized},
	} {
		t.Run(tc.user, func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			ack := c.connectWith(&packets.Connect{ClientID: "deny-" + tc.user, CleanStart: false,
				UsernameFlag: true, Username: tc.user, PasswordFlag: true, Password: []byte("x")})
			if ack.ReasonCode != tc.code || ack.SessionPresent {
				t.Fatalf("CONNACK code %#x present %v, want %#x and false", byte(ack.ReasonCode), ack.SessionPresent, byte(tc.code))
			}
			c.expectClosed(2 * time.Second)
		})
	}
	st := tb.Stats()
	if st.AuthRejected != 8 || st.ClientsTotal != 0 || st.ClientsPersisted != 0 {
		t.Fatalf("auth rejected %d, clients total %d, persisted %d; want 8, 0, 0", st.AuthRejected, st.ClientsTotal, st.ClientsPersisted)
	}
	c := dialRaw(t, tb.addr)
	if ack := c.connectWith(&packets.Connect{ClientID: "allowed", CleanStart: true, UsernameFlag: true, Username: "fine"}); ack.ReasonCode != 0 {
		t.Fatalf("allowed client got %#x", byte(ack.ReasonCode))
	}
}

// With no hooks at all every client is accepted, every topic allowed; an
// EventSink gets only the event types it asked for (a sink asking for none
// gets no call), and Wants is read once, not per event.
func TestHookSeamNilAndWanted(t *testing.T) {
	plain := startBroker(t, nil)
	c := dialRaw(t, plain.addr)
	if ack := c.connectWith(&packets.Connect{ClientID: "nohooks", CleanStart: true,
		UsernameFlag: true, Username: "anyone", PasswordFlag: true, Password: []byte("anything")}); ack.ReasonCode != 0 {
		t.Fatalf("nil Auth refused a client: %#x", byte(ack.ReasonCode))
	}
	if codes := c.subscribe(1, "#", 1); codes[0] != 1 {
		t.Fatalf("nil Topics refused a subscription: %v", codes)
	}

	connected := &recordingSink{mask: EventMask(0).With(EventClientConnected)}
	silent := &recordingSink{}
	for _, sink := range []*recordingSink{connected, silent} {
		tb := startBroker(t, func(o *Options) { o.Hooks.Events = sink })
		for _, id := range []string{"ev-a", "ev-b"} {
			c := dialRaw(t, tb.addr)
			c.mustConnect(id, true)
			c.subscribe(1, "ev/"+id, 1)
			c.send(&packets.Publish{Topic: "ev/" + id, Payload: []byte("p"), QoS: 1, PacketID: 2})
			for range 2 { // PUBACK and the PUBLISH, in either order
				c.read(2 * time.Second)
			}
			c.disconnect()
		}
		closeBroker(t, tb.Broker, 2*time.Second)
	}
	evs := connected.events()
	if len(evs) != 2 {
		t.Fatalf("sink wanting only client_connected got %d events: %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.Type != EventClientConnected {
			t.Fatalf("unwanted event %v", e.Type)
		}
	}
	if evs[0].ClientID != "ev-a" || evs[1].ClientID != "ev-b" {
		t.Fatalf("connected events for %q, %q", evs[0].ClientID, evs[1].ClientID)
	}
	if n := len(silent.events()); n != 0 {
		t.Fatalf("sink wanting nothing got %d events", n)
	}
	for _, s := range []*recordingSink{connected, silent} {
		s.mu.Lock()
		w := s.wants
		s.mu.Unlock()
		if w < 1 {
			t.Fatalf("Wants never called")
		}
	}
}

// While a slow Authenticate decides, the broker reads the socket to notice
// the client leaving; packets the client pipelined behind its CONNECT in
// the meantime are kept and handled, in order, once it is accepted. The
// password and will given to the hook stay intact although more bytes
// arrived after them.
func TestAuthPipelinedPacketsKept(t *testing.T) {
	release := make(chan struct{})
	seen := make(chan string, 1)
	auth := authFunc(func(_ context.Context, c *ClientInfo, pw []byte) AuthResult {
		<-release
		select {
		case seen <- c.ClientID + "/" + string(pw):
		default:
		}
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) { o.Hooks.Auth = auth })
	c := dialRaw(t, tb.addr)
	var batch []byte
	for _, p := range []packets.Packet{
		&packets.Connect{ProtocolVersion: packets.V311, ClientID: "pipeliner", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw-intact"),
			WillFlag: true, WillTopic: "will/t", WillPayload: []byte("bye")},
		&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "echo/#", QoS: 1}}},
		&packets.Publish{Topic: "echo/1", QoS: 1, PacketID: 2, Payload: make([]byte, 3000)},
	} {
		batch, _ = p.Append(batch, packets.V311)
	}
	c.write(batch)
	time.Sleep(50 * time.Millisecond) // lets the watcher read the pipelined packets; not asserted
	close(release)
	if got := <-seen; got != "pipeliner/pw-intact" {
		t.Fatalf("hook saw %q", got)
	}
	if ack, ok := c.read(2 * time.Second).(*packets.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("want CONNACK 0, got %v", ack)
	}
	var gotSuback, gotPuback, gotPublish bool
	for !(gotSuback && gotPuback && gotPublish) {
		switch p := c.read(2 * time.Second).(type) {
		case *packets.Suback:
			gotSuback = true
		case *packets.Puback:
			gotPuback = p.PacketID == 2
		case *packets.Publish:
			gotPublish = p.Topic == "echo/1" && len(p.Payload) == 3000
		}
	}
	// The will (from the CONNECT whose bytes preceded the pipelined ones)
	// is published intact on the abnormal close.
	w := dialRaw(t, tb.addr)
	w.mustConnect("will-watcher", true)
	w.subscribe(1, "will/#", 0)
	c.conn.Close()
	if m := w.expectPublish(2 * time.Second); m.Topic != "will/t" || string(m.Payload) != "bye" {
		t.Fatalf("will arrived as %q %q", m.Topic, m.Payload)
	}
}
