package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

const grantsAnswer = `{"result":"allow","acl":[
	{"topic":"devices/%u/#","actions":["publish","subscribe","receive"],"result":"allow"},
	{"topic":"devices/+/secrets","actions":["subscribe","receive"],"result":"deny"}],
	"attributes":{"tenant":"acme","role":"sensor"}}`

// An authenticate allow's acl and attributes become the Decision's Login,
// the request and answer both validated against api/openapi.yaml.
func TestAuthenticateAnswersLogin(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(200, grantsAnswer))
	p := newPlugin(t, f.url(), nil)
	d, err := auth(p, mqttClient("c1", "alice"), "pw")
	if err != nil || d.Result != hooks.Allow || d.Login == nil {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	g := d.Login.Grants
	if len(g) != 2 || g[0].Filter != "devices/%u/#" || !g[0].Allow || !g[0].Actions.Has(mqtt.ActionReceive) ||
		g[1].Allow || g[1].Actions.Has(mqtt.ActionPublish) || !g[1].Actions.Has(mqtt.ActionSubscribe) {
		t.Fatalf("grants %+v", g)
	}
	if d.Login.Attributes["tenant"] != "acme" || len(d.Login.Attributes) != 2 {
		t.Fatalf("attributes %v", d.Login.Attributes)
	}
	// A plain answer, as a first-edition plugin gives, has no Login.
	f.handle("/authenticate", answer(200, `{"result":"allow","cache_ttl":0}`))
	if d, err := auth(p, mqttClient("c2", "bob"), "pw"); err != nil || d.Login != nil || d.Result != hooks.Allow {
		t.Fatalf("first edition answer: %+v, %v", d, err)
	}
	// A deny's acl is ignored.
	f.handle("/authenticate", answer(200, `{"result":"deny","acl":[{"topic":"#","actions":["publish"],"result":"allow"}]}`))
	if d, err := auth(p, mqttClient("c3", "eve"), "pw"); err != nil || d.Login != nil || d.Result != hooks.Deny {
		t.Fatalf("deny: %+v, %v", d, err)
	}
}

// An answer over a login bound, or with a malformed rule, is an error (the
// on-error policy answers), counted by bound; never truncated.
func TestLoginBoundsRefuseTheAnswer(t *testing.T) {
	long := strings.Repeat("x", 40)
	for _, tc := range []struct {
		name, body, bound string
	}{
		{"rules", `{"result":"allow","acl":[` + strings.Repeat(`{"topic":"a","actions":["publish"],"result":"allow"},`, 3) +
			`{"topic":"b","actions":["publish"],"result":"deny"}]}`, boundACLRules},
		{"topic", `{"result":"allow","acl":[{"topic":"` + long + `","actions":["publish"],"result":"allow"}]}`, boundACLTopicBytes},
		{"attributes", `{"result":"allow","attributes":{"a":"1","b":"2","c":"3","d":"4"}}`, boundAttributes},
		{"attribute value", `{"result":"allow","attributes":{"a":"` + long + `"}}`, boundAttributeBytes},
		{"attribute key", `{"result":"allow","attributes":{"` + long + `":"1"}}`, boundAttributeBytes},
		{"bad filter", `{"result":"allow","acl":[{"topic":"a/#/b","actions":["publish"],"result":"allow"}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.handle("/authenticate", answer(200, tc.body))
			reg := prometheus.NewRegistry()
			p := newPlugin(t, f.url(), func(o *Options) {
				o.Registerer = reg
				o.Login = LoginOptions{MaxACLRules: 3, MaxACLTopicBytes: 32, MaxAttributes: 3, MaxAttributeBytes: 32}
			})
			_, err := auth(p, mqttClient("c", "u"), "pw")
			if kindOf(err) != KindBadAnswer {
				t.Fatalf("err %v, want a bad answer", err)
			}
			var le *loginError
			if tc.bound != "" && (!errors.As(err, &le) || le.bound != tc.bound) {
				t.Fatalf("err %v, want bound %s", err, tc.bound)
			}
			if tc.bound != "" {
				if n := readCounter(p.metrics.loginRefused.WithLabelValues("accounts", tc.bound)); n != 1 {
					t.Fatalf("login_refused{bound=%s} = %v, want 1", tc.bound, n)
				}
			}
		})
	}
}

// Attributes go in every topic_filtering request and in the cache key:
// the same check for clients with other attributes is asked again, for
// the same attributes (another login) it is not.
func TestAttributesInTopicRequestsAndKey(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	withAttrs := func(a map[string]string) *mqtt.ClientInfo {
		c := mqttClient("c1", "alice")
		c.SetLogin(&mqtt.Login{Attributes: a})
		return c
	}
	ctx := t.Context()
	if _, err := p.FilterTopic(ctx, withAttrs(map[string]string{"tenant": "acme"}), publish); err != nil {
		t.Fatal(err)
	}
	body := f.lastBody("/topic_filtering")
	if a, _ := body["attributes"].(map[string]any); a["tenant"] != "acme" {
		t.Fatalf("topic_filtering body %v has no attributes", body)
	}
	check := func(c *mqtt.ClientInfo, want int64) {
		t.Helper()
		if _, ok := p.FilterTopicNow(c, publish); !ok {
			if _, err := p.FilterTopic(ctx, c, publish); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.count("/topic_filtering"); n != want {
			t.Fatalf("%d topic_filtering calls, want %d", n, want)
		}
	}
	check(withAttrs(map[string]string{"tenant": "acme"}), 1)  // same attributes, new login: cached
	check(withAttrs(map[string]string{"tenant": "other"}), 2) // other attributes: asked
	check(mqttClient("c1", "alice"), 3)                       // none: asked
	if _, ok := f.lastBody("/topic_filtering")["attributes"]; ok {
		t.Fatal("attributes sent for a client without any")
	}
}
