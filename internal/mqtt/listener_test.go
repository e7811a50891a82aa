package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/testpki"
)

// testPKI is a throwaway CA with a server and a client certificate.
type testPKI struct {
	pool       *x509.CertPool
	server     tls.Certificate
	client     tls.Certificate
	serverName string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := testpki.NewCA(t, "mqttd test CA")
	return &testPKI{pool: ca.Pool, server: ca.Issue(t, "localhost", x509.ExtKeyUsageServerAuth),
		client: ca.Issue(t, "device-1", x509.ExtKeyUsageClientAuth), serverName: "localhost"}
}

// All four transports at once, each carrying messages to the others.
func TestListenersAllTransports(t *testing.T) {
	pki := newTestPKI(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	mtls := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	var infos = make(chan ClientInfo, 10)
	auth := authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
		infos <- *c
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) {
		o.Listeners = append(o.Listeners,
			ListenerConfig{Name: "tls", Type: "tcp", Bind: "127.0.0.1:0", TLS: mtls},
			ListenerConfig{Name: "ws", Type: "ws", Bind: "127.0.0.1:0", Path: "/mqtt"},
			ListenerConfig{Name: "wss", Type: "ws", Bind: "127.0.0.1:0", Path: "/secure", TLS: srvTLS})
		o.Hooks.Auth = auth
	})
	clientTLS := &tls.Config{RootCAs: pki.pool, ServerName: pki.serverName, Certificates: []tls.Certificate{pki.client}}
	urls := map[string]string{
		"tcp": "tcp://" + tb.addr,
		"tls": "ssl://" + tb.Addr("tls").String(),
		"ws":  "ws://" + tb.Addr("ws").String() + "/mqtt",
		"wss": "wss://" + tb.Addr("wss").String() + "/secure",
	}
	got := make(chan string, 16)
	var clients []paho.Client
	for name, url := range urls {
		o := paho.NewClientOptions().AddBroker(url).SetClientID("c-" + name).SetTLSConfig(clientTLS).
			SetAutoReconnect(false).SetConnectTimeout(3 * time.Second).SetProtocolVersion(4)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s connect: %v", name, tok.Error())
		}
		defer c.Disconnect(10)
		info := <-infos
		if info.Transport != name || info.Listener != name {
			t.Errorf("%s: client info transport %q listener %q", name, info.Transport, info.Listener)
		}
		if name == "tls" && (len(info.PeerCerts) == 0 || info.PeerCerts[0].Subject.CommonName != "device-1") {
			t.Errorf("mutual TLS: peer cert not passed to the hook: %v", info.PeerCerts)
		}
		n := name
		c.Subscribe("all/"+n, 1, func(_ paho.Client, m paho.Message) { got <- n + "<" + string(m.Payload()) }).Wait()
		clients = append(clients, c)
	}
	for i, c := range clients {
		for name := range urls {
			c.Publish("all/"+name, 1, false, []byte{byte('0' + i)}).Wait()
		}
	}
	for range len(urls) * len(clients) {
		select {
		case <-got:
		case <-time.After(3 * time.Second):
			t.Fatal("a transport lost messages")
		}
	}

	// mutual TLS: no client certificate, no connection.
	o := paho.NewClientOptions().AddBroker(urls["tls"]).SetClientID("nocert").
		SetTLSConfig(&tls.Config{RootCAs: pki.pool, ServerName: pki.serverName}).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Fatal("connected to a mutual-TLS listener without a client certificate")
	}
}

// A WebSocket handshake without the "mqtt" subprotocol is refused.
func TestWebSocketRequiresSubprotocol(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Listeners = append(o.Listeners, ListenerConfig{Name: "ws", Type: "ws", Bind: "127.0.0.1:0"})
	})
	req, _ := http.NewRequest("GET", "http://"+tb.Addr("ws").String()+"/mqtt", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without the mqtt subprotocol: status %d, want 400", resp.StatusCode)
	}
	// Wrong path: 404.
	resp, err = http.Get("http://" + tb.Addr("ws").String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("wrong path: %d", resp.StatusCode)
	}
}
