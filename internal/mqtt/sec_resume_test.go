package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/testpki"
)

// A session belongs to the identity that made it. A client with another
// user name that connects with the same client id and Clean Start 0 gets a
// fresh session (session present 0): none of the messages addressed to the
// first user, in flight or queued, reach it, and the first user's
// subscriptions do not carry over. The same user resuming keeps its session.
func TestSessionResumedByOtherUserStartsClean(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Topics = denyUserTopics("mallory", ActionReceive, "private/")
	})
	pub := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "pub", CleanStart: true}, "ops")

	alice := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "device-7"}, "alice")
	alice.subscribe(1, "private/#", 1)
	pub.publish1(1, "private/alice", "in flight", false)
	if p := alice.expectPublish(2 * time.Second); string(p.Payload) != "in flight" {
		t.Fatalf("alice got %q", p.Payload)
	}
	alice.conn.Close() // without acknowledging it
	waitFor(t, "alice's session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	pub.publish1(2, "private/alice", "queued", false)
	waitFor(t, "the message queued", func() bool { return tb.Stats().Queued == 1 })

	// Alice herself resumes her session: present, with both messages.
	again := dialRaw(t, tb.addr)
	if ack := again.connectWith(&packets.Connect{ClientID: "device-7", KeepAlive: 60,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("alice's resume: CONNACK %v present %v", ack.ReasonCode, ack.SessionPresent)
	}
	if p := again.expectPublish(2 * time.Second); string(p.Payload) != "in flight" || !p.Dup {
		t.Fatalf("alice's resend: %q dup %v", p.Payload, p.Dup)
	}
	again.conn.Close() // again without acknowledging
	waitFor(t, "alice's session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	m := dialRaw(t, tb.addr)
	ack := m.connectWith(&packets.Connect{ClientID: "device-7", KeepAlive: 60,
		UsernameFlag: true, Username: "mallory", PasswordFlag: true, Password: []byte("pw")})
	if ack.ReasonCode != 0 {
		t.Fatalf("mallory refused: %v", ack.ReasonCode)
	}
	if ack.SessionPresent {
		t.Errorf("mallory resumed alice's session (session present 1)")
	}
	m.expectNothing(300 * time.Millisecond)
	pub.publish1(3, "private/alice", "live", false)
	m.expectNothing(300 * time.Millisecond)
}

// With mutual TLS the client certificate is part of the identity: the same
// certificate resumes its session, another certificate naming the same
// client id (and no user name either) starts clean.
func TestSessionResumedByOtherCertificateStartsClean(t *testing.T) {
	ca := testpki.NewCA(t, "mqttd session CA")
	srv := ca.Issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	mtls := &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: ca.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	tb := startBroker(t, func(o *Options) {
		o.Listeners = []ListenerConfig{{Name: "mtls", Type: "tcp", Bind: "127.0.0.1:0", TLS: mtls}}
	})
	url := "ssl://" + tb.Addr("mtls").String()
	as := func(cn string) func(*paho.ClientOptions) {
		cert := ca.Issue(t, cn, x509.ExtKeyUsageClientAuth)
		return func(o *paho.ClientOptions) {
			o.SetCleanSession(false).SetTLSConfig(&tls.Config{RootCAs: ca.Pool, ServerName: "localhost",
				Certificates: []tls.Certificate{cert}})
		}
	}
	dev1, dev2 := as("device-1"), as("device-2")
	first, present := pahoConnect(t, url, "cert-shared", dev1)
	if present {
		t.Fatal("a new session was present")
	}
	first.Disconnect(50)
	waitFor(t, "the session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	again, present := pahoConnect(t, url, "cert-shared", dev1)
	if !present {
		t.Fatal("the same certificate did not resume its session")
	}
	again.Disconnect(50)
	waitFor(t, "the session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	if _, present := pahoConnect(t, url, "cert-shared", dev2); present {
		t.Fatal("another certificate resumed device-1's session")
	}
}
