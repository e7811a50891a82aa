package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/signing"
)

func TestRequestHeaders(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) {
		o.Secret = "s3cret"
		o.Headers = map[string]string{"Authorization": "Bearer abc", "X-Mqttd-Plugin": "spoofed"}
		o.Cache.Size = 0 // every call reaches the plugin
	})
	for range 3 {
		if _, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := map[string]bool{}
	for i, h := range f.headers["/authenticate"] {
		for k, want := range map[string]string{
			"X-Mqttd-Plugin": "accounts", "Content-Type": "application/json",
			"User-Agent": userAgent, "Authorization": "Bearer abc",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		id := h.Get("X-Mqttd-Request-Id")
		ids[id] = true
		r := signing.Request{Method: "POST", Path: "/authenticate", ID: id, Body: f.bodies["/authenticate"][i]}
		if err := signing.Verify(h.Get(signing.Header), r, []string{"s3cret"}, time.Minute, time.Now()); err != nil {
			t.Errorf("signature: %v", err)
		}
		// The signature binds the endpoint, the method and the request id:
		// replayed elsewhere, or under another id, it does not verify.
		for _, other := range []signing.Request{
			{Method: "POST", Path: "/topic_filtering", ID: id, Body: r.Body},
			{Method: "GET", Path: "/authenticate", ID: id, Body: r.Body},
			{Method: "POST", Path: "/authenticate", ID: id + "0", Body: r.Body},
		} {
			if err := signing.Verify(h.Get(signing.Header), other, []string{"s3cret"}, time.Minute, time.Now()); err == nil {
				t.Errorf("the signature of POST /authenticate also verifies for %s %s id %s", other.Method, other.Path, other.ID)
			}
		}
	}
	if len(ids) != 3 || ids[""] {
		t.Fatalf("request ids not unique: %v", ids)
	}
	if userAgent != "mqttd/0.1.0" && !strings.HasPrefix(userAgent, "mqttd/") {
		t.Fatalf("user agent %q", userAgent)
	}
}

// The signed path is the one on the wire: with a base path in the alias's
// url, the base path is part of it.
func TestSignatureCoversTheBasePath(t *testing.T) {
	f := newFake(t)
	f.handle("/hooks/authenticate", answer(204, ``))
	p := newPlugin(t, f.url()+"/hooks", func(o *Options) { o.Secret = "s3cret" })
	if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result != hooks.Allow {
		t.Fatalf("%+v, %v", d, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.headers["/hooks/authenticate"][0]
	r := signing.Request{Method: "POST", Path: "/hooks/authenticate", ID: h.Get("X-Mqttd-Request-Id"), Body: f.bodies["/hooks/authenticate"][0]}
	if err := signing.Verify(h.Get(signing.Header), r, []string{"s3cret"}, time.Minute, time.Now()); err != nil {
		t.Fatalf("signature over the base path: %v", err)
	}
}

func TestNoSignatureWithoutSecret(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	auth(p, mqttClient("c1", "alice"), "pw")
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.headers["/authenticate"][0].Get(signing.Header); h != "" {
		t.Fatalf("signed without a secret: %q", h)
	}
}

func TestAuthenticateBody(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Cache.Size = 0 })
	cert := selfSigned(t)
	c := mqttClient("c1", "alice")
	c.RemoteAddr = "[2001:db8::1]:40000"
	c.Transport, c.Listener, c.KeepAlive, c.CleanStart = "tls", "secure", 30, false
	c.PeerCerts = []*x509.Certificate{cert}
	c.UserProperties = []packets.UserProperty{{Key: "site", Value: "hall-2"}}

	check := func(password []byte, want map[string]any, absent ...string) {
		t.Helper()
		if _, err := p.Authenticate(context.Background(), &hooks.AuthRequest{Client: c, Password: password}); err != nil {
			t.Fatal(err)
		}
		got := f.lastBody("/authenticate")
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		for _, k := range absent {
			if _, ok := got[k]; ok {
				t.Errorf("%s present: %#v", k, got[k])
			}
		}
	}
	base := map[string]any{"client_id": "c1", "username": "alice", "remote_addr": "[2001:db8::1]:40000",
		"listener": "secure", "transport": "tls", "protocol_version": 5.0, "clean_start": false, "keep_alive": 30.0}
	with := func(k string, v any) map[string]any {
		m := map[string]any{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	check([]byte("pässword"), with("password", "pässword"), "password_base64")
	check([]byte{0, 0xff, 0xfe}, with("password_base64", "AP/+"), "password")
	check(nil, base, "password", "password_base64")
	check([]byte{}, with("password", ""), "password_base64")

	got := f.lastBody("/authenticate")
	tls, _ := got["tls"].(map[string]any)
	fp := sha256.Sum256(cert.Raw)
	if tls["fingerprint_sha256"] != hex.EncodeToString(fp[:]) || tls["subject"] != "CN=sensor-17" ||
		tls["issuer"] != "CN=sensor-17" || tls["serial"] != "2a" {
		t.Errorf("tls = %#v", tls)
	}
	if dns, _ := tls["dns_names"].([]any); len(dns) != 1 || dns[0] != "sensor-17.example" {
		t.Errorf("dns_names = %#v", tls["dns_names"])
	}
	ups, _ := got["user_properties"].([]any)
	if len(ups) != 1 || ups[0].(map[string]any)["key"] != "site" || ups[0].(map[string]any)["value"] != "hall-2" {
		t.Errorf("user_properties = %#v", got["user_properties"])
	}
}

func TestTopicFilteringBody(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	for _, r := range []mqtt.TopicRequest{
		{Action: mqtt.ActionSubscribe, Topic: "a/+/c", QoS: 2},
		{Action: mqtt.ActionPublish, Topic: "a/b", QoS: 1, Retain: true},
		{Action: mqtt.ActionReceive, Topic: "a/b"},
	} {
		if _, err := p.FilterTopic(context.Background(), mqttClient("c1", "bob"), r); err != nil {
			t.Fatal(err)
		}
		got := f.lastBody("/topic_filtering")
		want := map[string]any{"client_id": "c1", "username": "bob", "topic": r.Topic, "action": r.Action.String(),
			"qos": float64(r.QoS), "retain": r.Retain}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", r.Action, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: unexpected fields in %#v", r.Action, got)
		}
	}
}
