package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// startNATS runs an embedded nats-server with JetStream in a temporary
// directory, on a port the OS picks.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// testNode is one broker of a test cluster.
type testNode struct {
	name   string
	broker *mqtt.Broker
	node   *Node
	addr   string
}

func testLogger() *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNode starts a broker named name on loopback, in the cluster of ns
// (nil ns: a single node, for baselines).
func startNode(t testing.TB, ns *server.Server, name string) *testNode {
	t.Helper()
	return startNodeWith(t, ns, name, mqtt.Limits{})
}

func startNodeWith(t testing.TB, ns *server.Server, name string, lim mqtt.Limits) *testNode {
	t.Helper()
	url := ""
	if ns != nil {
		url = ns.ClientURL()
	}
	return startNodeAt(t, url, name, lim)
}

// startNodeURL starts a cluster node on the NATS at url.
func startNodeURL(t testing.TB, url, name string) *testNode {
	t.Helper()
	return startNodeAt(t, url, name, mqtt.Limits{})
}

func startNodeAt(t testing.TB, url, name string, lim mqtt.Limits) *testNode {
	t.Helper()
	tn := &testNode{name: name}
	opts := mqtt.Options{Name: name, Logger: testLogger(), Limits: lim,
		Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if url != "" {
		n, err := Open(ctx, Options{URLs: []string{url}, Name: name, Logger: opts.Logger, NodeLease: testLease})
		if err != nil {
			t.Fatal(err)
		}
		tn.node = n
		opts.Cluster = n
	}
	b, err := mqtt.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if tn.node != nil {
		if err := tn.node.Start(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	tn.broker = b
	tn.addr = b.Addr("t").String()
	t.Cleanup(func() { tn.stop() })
	return tn
}

// testLease is the node lease of the nodes tests start (none runs in
// parallel: a test may lengthen it for its nodes and restore it).
var testLease = 2 * time.Second

var stopOnce sync.Map

func (tn *testNode) stop() {
	if _, done := stopOnce.LoadOrStore(tn, true); done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tn.broker.Close(ctx)
	if tn.node != nil {
		tn.node.Close()
	}
}

// client connects a paho.mqtt.golang (3.1.1) client.
func client(t testing.TB, tn *testNode, id string, clean bool) paho.Client {
	t.Helper()
	return clientWith(t, tn, id, clean, nil)
}

// clientWith connects a client whose messages for subscriptions without a
// handler go to def.
func clientWith(t testing.TB, tn *testNode, id string, clean bool, def *received) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + tn.addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(true)
	if def != nil {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { def.ch <- m })
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, tn.name, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c
}

func wait(t testing.TB, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// received collects messages a subscription delivers.
type received struct {
	ch chan paho.Message
}

func subscribe(t testing.TB, c paho.Client, filter string, qos byte) *received {
	t.Helper()
	r := newReceived()
	wait(t, "subscribe "+filter, c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { r.ch <- m }))
	return r
}

func newReceived() *received { return &received{ch: make(chan paho.Message, 100000)} }

// next waits for the next message, failing after a generous deadline.
func (r *received) next(t testing.TB) paho.Message {
	t.Helper()
	select {
	case m := <-r.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
		return nil
	}
}

// none checks that nothing more arrives in a short while; the messages
// before were waited for, so anything extra would already be on its way.
func (r *received) none(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case m := <-r.ch:
		t.Fatalf("unexpected message on %q: %q", m.Topic(), m.Payload())
	case <-time.After(within):
	}
}

// v5 connects a paho.golang (MQTT 5) client; server DISCONNECTs arrive on
// the returned channel.
func v5(t testing.TB, tn *testNode, id string) (*pahov5.Client, chan *pahov5.Disconnect) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tn.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	disc := make(chan *pahov5.Disconnect, 1)
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: 5 * time.Second,
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case disc <- d:
			default:
			}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatalf("v5 connect %s to %s: %v (%+v)", id, tn.name, err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c, disc
}

func payload(i int) []byte { return fmt.Appendf(nil, "m%d", i) }

func mqttPublish(topic string, body []byte) mqtt.PublishRequest {
	return mqtt.PublishRequest{Topic: topic, Payload: body}
}

type pahoClient = paho.Client
