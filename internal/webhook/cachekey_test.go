package webhook

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// TestAuthCacheKeyCoversTheRequest: a plugin that requires a user property
// (or a protocol version, a clean start, a keep alive, a transport) is
// asked again when a later CONNECT differs in it, instead of that CONNECT
// being let in on the allow cached for the first.
func TestAuthCacheKeyCoversTheRequest(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		bs := f.bodies["/authenticate"]
		raw := bs[len(bs)-1]
		f.mu.Unlock()
		var req struct {
			UserProperties []struct{ Key, Value string } `json:"user_properties"`
		}
		json.Unmarshal(raw, &req)
		for _, p := range req.UserProperties {
			if p.Key == "tenant" && p.Value == "plant-7" {
				answer(200, `{"result":"allow","cache_ttl":600}`)(w, r)
				return
			}
		}
		answer(200, `{"result":"deny","cache_ttl":600}`)(w, r)
	})
	p := newPlugin(t, f.url(), nil)
	base := func() *mqtt.ClientInfo {
		c := mqttClient("door-1", "alice")
		c.UserProperties = []packets.UserProperty{{Key: "tenant", Value: "plant-7"}}
		return c
	}
	if d, err := auth(p, base(), "pw"); err != nil || d.Result != hooks.Allow {
		t.Fatalf("the login with the property: %+v, %v", d, err)
	}
	if d, _ := auth(p, base(), "pw"); d.Result != hooks.Allow || f.count("/authenticate") != 1 {
		t.Fatalf("the same login again was not served from the cache (%+v, %d calls)", d, f.count("/authenticate"))
	}
	stripped := base()
	stripped.UserProperties = nil
	if d, _ := auth(p, stripped, "pw"); d.Result != hooks.Deny {
		t.Fatalf("a login without the required user property got %v: a cached allow was reused", d.Result)
	}
	other := base()
	other.UserProperties[0].Value = "plant-8"
	if d, _ := auth(p, other, "pw"); d.Result != hooks.Deny {
		t.Fatalf("a login with another tenant got %v", d.Result)
	}
	// Every other field of the body is in the key too: each change is a miss.
	for name, edit := range map[string]func(*mqtt.ClientInfo){
		"protocol version": func(c *mqtt.ClientInfo) { c.ProtocolVersion = 4 },
		"clean start":      func(c *mqtt.ClientInfo) { c.CleanStart = false },
		"keep alive":       func(c *mqtt.ClientInfo) { c.KeepAlive = 61 },
		"transport":        func(c *mqtt.ClientInfo) { c.Transport = "ws" },
		"property order": func(c *mqtt.ClientInfo) {
			c.UserProperties = append([]packets.UserProperty{{Key: "a", Value: "b"}}, c.UserProperties...)
		},
	} {
		c := base()
		edit(c)
		before := f.count("/authenticate")
		auth(p, c, "pw")
		if f.count("/authenticate") != before+1 {
			t.Errorf("a login differing in %s was answered from the cache", name)
		}
	}
	// The source port alone is not: a reconnect from a new port hits.
	c := base()
	c.RemoteAddr = "127.0.0.1:40999"
	before := f.count("/authenticate")
	auth(p, c, "pw")
	if f.count("/authenticate") != before {
		t.Error("a reconnect from a new source port missed the cache")
	}
}
