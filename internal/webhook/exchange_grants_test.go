package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

// A re-authentication replaces the grants the client logged in with: the
// plugin's allow at CONNECT grants publish on reports/#, its allow at
// re-authentication denies it, and the broker applies each from the next
// check on, itself: the topic plugin (which would deny everything) is
// never asked.
func TestReauthReplacesGrants(t *testing.T) {
	addr, topicCalls := grantsBroker(t, func(reauth bool) []map[string]any {
		result := "allow"
		if reauth {
			result = "deny"
		}
		return []map[string]any{{"topic": "reports/#", "actions": []string{"publish"}, "result": result}}
	})

	c, ack, err := connectToken(t, addr, "grant-1", "hello", &tokenAuther{})
	if err != nil {
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	publish := func() byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		resp, err := c.Publish(ctx, &pahov5.Publish{Topic: "reports/today", QoS: 1, Payload: []byte("x")})
		if resp == nil {
			t.Fatalf("publish: %v", err)
		}
		return resp.ReasonCode
	}
	if rc := publish(); rc != 0x00 && rc != 0x10 {
		t.Fatalf("publish under the login's grants: PUBACK 0x%02x, want success", rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := c.Authenticate(ctx, &pahov5.Auth{ReasonCode: 0x19,
		Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte("hello")}})
	if err != nil || !resp.Success {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	if rc := publish(); rc != 0x87 {
		t.Fatalf("publish after the re-authentication's grants deny it: PUBACK 0x%02x, want 0x87", rc)
	}
	if n := topicCalls.Load(); n != 0 {
		t.Fatalf("%d topic_filtering calls, want 0: the grants decide", n)
	}
}

// grantsBroker runs a broker whose one HTTP plugin authenticates with
// tokenPlugin's TOKEN exchange, adds acl(reauth) to every allow (reauth:
// the allow ends a re-authentication), and denies every topic_filtering
// call, which it counts: a check the grants do not decide is refused.
func grantsBroker(t *testing.T, acl func(reauth bool) []map[string]any) (string, *atomic.Int32) {
	t.Helper()
	tp := &tokenPlugin{pending: map[string]string{}}
	topicCalls := new(atomic.Int32)
	f := newFake(t)
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		rec := &grantRecorder{ResponseWriter: w}
		tp.serve(rec, r)
		if rec.allow == nil {
			w.Write(rec.body)
			return
		}
		steps := tp.seen()
		rec.allow["acl"] = acl(len(steps) > 0 && steps[len(steps)-1].Reauth)
		json.NewEncoder(w).Encode(rec.allow)
	})
	f.handle("/topic_filtering", func(w http.ResponseWriter, _ *http.Request) {
		topicCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":"deny"}`))
	})
	p := newPlugin(t, f.url(), nil)
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{p.Alias(): {Plugin: p, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{p.Alias()}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{p.Alias()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	return addr, topicCalls
}

// grantRecorder captures tokenPlugin's answer so the test can add grants
// to an allow before it goes out.
type grantRecorder struct {
	http.ResponseWriter
	body  []byte
	allow map[string]any
}

func (g *grantRecorder) Write(b []byte) (int, error) {
	g.body = append(g.body, b...)
	var v map[string]any
	if json.Unmarshal(g.body, &v) == nil && v["result"] == "allow" {
		g.allow = v
	}
	return len(b), nil
}
