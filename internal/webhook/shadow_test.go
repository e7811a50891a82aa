package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

// shadowStack runs a broker whose auth and topic chains are the HTTP
// plugin "live" (allows) and, with shadow set, the HTTP plugin
// "candidate" as a shadow, whose /authenticate and /topic_filtering
// answer deny once released. It returns the broker's address.
func shadowStack(t testing.TB, reg *prometheus.Registry, shadow bool, released <-chan struct{}) string {
	t.Helper()
	live := newPlugin(t, newFake(t).url(), func(o *Options) { o.Alias, o.Registerer = "live", reg })
	specs := map[string]hooks.PluginSpec{"live": {Plugin: live, Type: "http"}}
	aliases := []string{"live"}
	if shadow {
		f := newFake(t)
		deny := func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-released:
			case <-r.Context().Done():
				return
			}
			answer(200, `{"result":"deny","reason":"the candidate says no","cache_ttl":0}`)(w, r)
		}
		f.handle("/authenticate", deny)
		f.handle("/topic_filtering", deny)
		cand := newPlugin(t, f.url(), func(o *Options) { o.Alias, o.Registerer, o.Timeout = "candidate", reg, time.Minute })
		specs["candidate"] = hooks.PluginSpec{Plugin: cand, Type: "http", Shadow: true}
		aliases = append(aliases, "candidate")
	}
	m, err := hooks.New(hooks.Options{Plugins: specs, Registerer: reg,
		Auth:   hooks.AuthOptions{Plugins: aliases},
		Topics: hooks.TopicOptions{Enable: true, Plugins: aliases}})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	return addr
}

// connectV5 connects a plain MQTT 5 client and returns how long CONNECT took.
func connectV5(t *testing.T, addr, id string) (*pahov5.Client, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	if _, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Username: "u", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	took := time.Since(start)
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c, took
}

// A shadow HTTP plugin that denies everything, and answers only when the
// test lets it, neither changes an outcome nor slows a client down: CONNECT
// latency with it against without it in the same run (medians of
// connects taken in turns, so both see the same load), and once released
// every answer is counted as a disagreement, per action.
func TestShadowHTTPPlugin(t *testing.T) {
	const n = 21
	released := make(chan struct{})
	reg := prometheus.NewRegistry()
	plain := shadowStack(t, prometheus.NewRegistry(), false, nil)
	addr := shadowStack(t, reg, true, released)
	var tookWith, tookWithout []time.Duration
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		_, d := connectV5(t, plain, "plain-"+id)
		tookWithout = append(tookWithout, d)
		_, d = connectV5(t, addr, "shadowed-"+id)
		tookWith = append(tookWith, d)
	}
	slices.Sort(tookWith)
	slices.Sort(tookWithout)
	with, without := tookWith[n/2], tookWithout[n/2]
	t.Logf("median CONNECT with a shadow HTTP plugin that has not answered: %v; without: %v (ratio %.2f)",
		with, without, float64(with)/float64(without))
	if with > bound/2 {
		t.Fatalf("CONNECT took %v with the shadow: it waited for it", with)
	}

	// Publishing and subscribing work as the enforcing plugin says.
	c, _ := connectV5(t, addr, "shadowed-pub")
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if sa, err := c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "s/t", QoS: 1}}}); err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe: %+v %v", sa, err)
	}
	if pr, err := c.Publish(ctx, &pahov5.Publish{Topic: "s/t", QoS: 1, Payload: []byte("x")}); err != nil || pr.ReasonCode != 0 {
		t.Fatalf("publish: %+v %v", pr, err)
	}
	close(released)
	for _, act := range []string{"authenticate", "subscribe", "publish"} {
		eventually(t, "shadow "+act+" disagreements counted", func() bool {
			v, _ := metricValue(t, reg, "candidate", "mqttd_plugin_shadow_total", map[string]string{"action": act, "outcome": "disagree"})
			return v >= 1
		})
	}
	if v, _ := metricValue(t, reg, "candidate", "mqttd_plugin_shadow_total", map[string]string{"outcome": "agree"}); v != 0 {
		t.Fatalf("%v agreements counted, want 0", v)
	}
}
