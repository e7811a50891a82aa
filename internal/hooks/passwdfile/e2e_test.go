package passwdfile

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

// connect311 connects a paho 3.1.1 client and returns the CONNACK code.
func connect311(t *testing.T, addr, user, pw string) byte {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("c-" + user).SetUsername(user).SetPassword(pw).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("paho connect as %q did not finish", user)
	}
	if c.IsConnected() {
		c.Disconnect(50)
	}
	return tok.(*paho.ConnectToken).ReturnCode()
}

// Real clients against a broker whose auth chain is the plugin: MQTT
// 3.1.1 hears 0x04 for a wrong password and for a user the file does not
// know alike; MQTT 5.0 hears 0x86; a reload takes effect for the next CONNECT
// while a connected client stays connected.
func TestEndToEnd(t *testing.T) {
	path := hookstest.WriteFile(t, "passwd", "alice:"+refArgon2id+"\nbob:"+refBcrypt2y+"\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	// The auth chain with this plugin alone and anonymous clients refused.
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"passwd": {Plugin: p, Type: "password-file"}},
		Auth:    hooks.AuthOptions{Plugins: []string{"passwd"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)

	for _, tc := range []struct {
		user, pw string
		want     byte
	}{
		{"alice", "correct horse", packets.Accepted},
		{"bob", "battery staple", packets.Accepted},
		{"alice", "battery staple", packets.ErrRefusedBadUsernameOrPassword},
		{"bob", "", packets.ErrRefusedBadUsernameOrPassword},
		{"mallory", "correct horse", packets.ErrRefusedBadUsernameOrPassword},
	} {
		if got := connect311(t, addr, tc.user, tc.pw); got != tc.want {
			t.Errorf("3.1.1 CONNECT as %s/%q: CONNACK %#x, want %#x", tc.user, tc.pw, got, tc.want)
		}
	}

	if _, ack := connect5(t, addr, "alice", "wrong"); ack.ReasonCode != ReasonBadCredentials {
		t.Errorf("5.0 CONNECT with a wrong password: CONNACK %#x, want 0x86", ack.ReasonCode)
	}
	alice, ack := connect5(t, addr, "alice", "correct horse")
	if alice == nil {
		t.Fatalf("5.0 CONNECT as alice: CONNACK %#x", ack.ReasonCode)
	}
	defer alice.Disconnect(&pahov5.Disconnect{})

	// Reload: alice's password changes; her open connection is untouched.
	os.WriteFile(path, []byte("alice:"+refBcrypt2y+"\n"), 0o600)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := connect311(t, addr, "alice", "correct horse"); got != packets.ErrRefusedBadUsernameOrPassword {
		t.Errorf("old password after reload: CONNACK %#x", got)
	}
	if got := connect311(t, addr, "alice", "battery staple"); got != packets.Accepted {
		t.Errorf("new password after reload: CONNACK %#x", got)
	}
	if got := connect311(t, addr, "bob", "battery staple"); got != packets.ErrRefusedBadUsernameOrPassword {
		t.Errorf("bob was removed by the reload: CONNACK %#x", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := alice.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "a"}}}); err != nil {
		t.Errorf("the client connected before the reload lost its connection: %v", err)
	}
}

// connect5 connects a paho.golang MQTT 5.0 client; it returns the client
// when the broker accepted it, and the CONNACK either way.
func connect5(t *testing.T, addr, user, pw string) (*pahov5.Client, *pahov5.Connack) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: "v5-" + user, CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(pw), PasswordFlag: true})
	if ack == nil {
		t.Fatalf("5.0 CONNECT as %s: no CONNACK: %v", user, err)
	}
	if err != nil {
		conn.Close()
		return nil, ack
	}
	return c, ack
}

// With anonymous clients allowed, a user name the file does not list is
// still refused, with the answer a wrong password gets (so the CONNACK does
// not tell which names exist); a client without a user name is the
// plugin's to ignore and follows allow-anonymous.
func TestUnknownUserRefusedWhenAnonymousAllowed(t *testing.T) {
	path := hookstest.WriteFile(t, "passwd", "alice:"+refArgon2id+"\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"passwd": {Plugin: p, Type: "password-file"}},
		Auth:    hooks.AuthOptions{Plugins: []string{"passwd"}, AllowAnonymous: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)

	for _, tc := range []struct {
		user, pw string
		want     byte
	}{
		{"bob", "anything", packets.ErrRefusedBadUsernameOrPassword},
		{"bob", "", packets.ErrRefusedBadUsernameOrPassword},
		{"Alice", "correct horse", packets.ErrRefusedBadUsernameOrPassword},
		{"", "", packets.Accepted},
		{"alice", "correct horse", packets.Accepted},
		{"alice", "wrong", packets.ErrRefusedBadUsernameOrPassword},
	} {
		if got := connect311(t, addr, tc.user, tc.pw); got != tc.want {
			t.Errorf("3.1.1 CONNECT as %q/%q: CONNACK %#x, want %#x", tc.user, tc.pw, got, tc.want)
		}
	}
	if c, ack := connect5(t, addr, "bob", "anything"); ack.ReasonCode != ReasonBadCredentials {
		if c != nil {
			c.Disconnect(&pahov5.Disconnect{})
		}
		t.Errorf("5.0 CONNECT as an unknown user: CONNACK %#x, want 0x86", ack.ReasonCode)
	}
}
