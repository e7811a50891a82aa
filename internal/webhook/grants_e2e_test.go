package webhook_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/webhook"
	"github.com/mqttd/mqttd/internal/webhook/contract"
)

// e2eBound turns a hang into a failure; it measures nothing.
const e2eBound = 10 * time.Second

// grantsService is a plugin service on loopback that answers every login
// with grants over the user's own subtree (all but its secret topic, which
// the user may not receive) and attributes, and counts topic_filtering
// calls. Every request and answer is validated against api/openapi.yaml.
// It can be taken down (its port closed) and brought back on the same
// port.
type grantsService struct {
	t    *testing.T
	addr string
	rec  *contract.Recorder
	srv  *http.Server

	topicCalls atomic.Int64
	mu         sync.Mutex
	topicAttrs []map[string]any // attributes of each topic_filtering request
	events     []map[string]any
}

func newGrantsService(t *testing.T) *grantsService {
	v, err := contract.New()
	if err != nil {
		t.Fatal(err)
	}
	g := &grantsService{t: t}
	g.rec = contract.Wrap(v, http.HandlerFunc(g.serve))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.start(ln)
	t.Cleanup(func() {
		g.down()
		g.rec.Check(t)
	})
	return g
}

func (g *grantsService) start(ln net.Listener) {
	g.srv = &http.Server{Handler: g.rec}
	go g.srv.Serve(ln)
}

func (g *grantsService) down() { g.srv.Close() }

func (g *grantsService) up() {
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.start(ln)
}

func (g *grantsService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	json.Unmarshal(body, &req)
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/manifest":
		io.WriteString(w, `{"name":"grants","version":"1","authenticate":true,"topic_filtering":true,
			"events":["broker_client_connected","mqtt_packet_received"]}`)
	case "/authenticate":
		io.WriteString(w, `{"result":"allow","cache_ttl":0,"acl":[
			{"topic":"devices/%u/secret","actions":["receive"],"result":"deny"},
			{"topic":"devices/%u/#","actions":["publish","subscribe","receive"],"result":"allow"}],
			"attributes":{"tenant":"acme","user":"`+req["username"].(string)+`"}}`)
	case "/topic_filtering":
		g.topicCalls.Add(1)
		g.mu.Lock()
		a, _ := req["attributes"].(map[string]any)
		g.topicAttrs = append(g.topicAttrs, a)
		g.mu.Unlock()
		io.WriteString(w, `{"result":"allow","cache_ttl":0}`)
	case "/events":
		var batch struct{ Events []map[string]any }
		json.Unmarshal(body, &batch)
		g.mu.Lock()
		g.events = append(g.events, batch.Events...)
		g.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

// eventsOf returns the events of type typ received so far.
func (g *grantsService) eventsOf(typ string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, e := range g.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// grantsBroker runs a real broker whose one HTTP plugin authenticates,
// checks topics and takes events.
func grantsBroker(t *testing.T, url string) (string, *webhook.Plugin) {
	p, err := webhook.New(webhook.Options{Alias: "grants", URL: url, Timeout: time.Second,
		Cache: webhook.DefaultCache, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Breaker: webhook.BreakerOptions{OpenFor: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hooks.New(hooks.Options{Broker: "test",
		Plugins: map[string]hooks.PluginSpec{"grants": {Plugin: p, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{"grants"}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"grants"}, Default: hooks.Deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	return addr, p
}

// dial connects a 3.1.1 client as user whose messages arrive on msgs.
func dial(t *testing.T, addr, user string, msgs chan<- string) paho.Client {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user + "-c").SetUsername(user).SetPassword("pw").
		SetAutoReconnect(false).SetConnectTimeout(e2eBound).SetProtocolVersion(4).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m.Topic() + "=" + string(m.Payload()) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(e2eBound) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(e2eBound) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

// expect reads the next message and requires it to be want.
func expect(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	select {
	case got := <-msgs:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(e2eBound):
		t.Fatalf("%q never arrived", want)
	}
}

// Grants decide subscribe, publish and receive with no topic_filtering
// call, and keep deciding while the plugin is down; a check they do not
// cover goes to the plugin with the client's attributes, which also reach
// its events.
func TestGrantsWithRealClientsAndPlugin(t *testing.T) {
	svc := newGrantsService(t)
	addr, _ := grantsBroker(t, "http://"+svc.addr)
	msgs := make(chan string, 16)
	alice := dial(t, addr, "alice", msgs)
	wait(t, alice.Subscribe("devices/alice/#", 1, nil))
	wait(t, alice.Publish("devices/alice/secret", 1, false, "s1")) // published, not received
	wait(t, alice.Publish("devices/alice/t", 1, false, "1"))
	expect(t, msgs, "devices/alice/t=1")
	if n := svc.topicCalls.Load(); n != 0 {
		t.Fatalf("%d topic_filtering calls for checks the grants cover, want 0", n)
	}

	// Not covered: asked, with the attributes.
	wait(t, alice.Publish("elsewhere/x", 1, false, "e"))
	if n := svc.topicCalls.Load(); n != 1 {
		t.Fatalf("%d topic_filtering calls, want 1 (the publish no grant covers)", n)
	}
	svc.mu.Lock()
	attrs := svc.topicAttrs[0]
	svc.mu.Unlock()
	if attrs["tenant"] != "acme" || attrs["user"] != "alice" {
		t.Fatalf("topic_filtering attributes %v", attrs)
	}

	// The plugin goes down: the grants still decide, without it.
	svc.down()
	wait(t, alice.Publish("devices/alice/secret", 1, false, "s2"))
	wait(t, alice.Publish("devices/alice/t", 1, false, "2"))
	expect(t, msgs, "devices/alice/t=2")
	svc.up()

	// Events about the client carry its attributes; the CONNECT's packet
	// event arrives, naming its client.
	deadline := time.Now().Add(e2eBound)
	for len(svc.eventsOf("broker_client_connected")) == 0 || len(svc.eventsOf("mqtt_packet_received")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("connected or packet events never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ev := svc.eventsOf("broker_client_connected")[0]
	if a, _ := ev["attributes"].(map[string]any); a["tenant"] != "acme" {
		t.Fatalf("broker_client_connected %v has no attributes", ev)
	}
	var connect map[string]any
	for _, e := range svc.eventsOf("mqtt_packet_received") {
		if pk, _ := e["packet"].(map[string]any); pk["packet_type"] == "connect" {
			connect = e
		}
	}
	if connect == nil || connect["client_id"] != "alice-c" {
		t.Fatalf("no CONNECT packet event naming alice-c among %v", svc.eventsOf("mqtt_packet_received"))
	}
	select {
	case m := <-msgs:
		if strings.Contains(m, "secret") {
			t.Fatalf("received %q, which the grants deny", m)
		}
	default:
	}
}
