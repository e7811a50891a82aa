package hooks

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// granting is an auth plugin that allows every client with one Login.
type granting struct{ login *mqtt.Login }

func (g *granting) Authenticate(context.Context, *AuthRequest) (Decision, error) {
	return Decision{Result: Allow, Login: g.login}, nil
}

// countingFilter is a topic plugin that answers res and counts its calls.
type countingFilter struct {
	res   Result
	calls atomic.Int64
}

func (f *countingFilter) FilterTopic(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
	f.calls.Add(1)
	return Decision{Result: f.res}, nil
}

var (
	sub, pub, recv = mqtt.ActionSubscribe, mqtt.ActionPublish, mqtt.ActionReceive
	allActions     = mqtt.ActionSet(0).With(sub).With(pub).With(recv)
)

func grant(filter string, allow bool, acts ...mqtt.Action) mqtt.Grant {
	g := mqtt.Grant{Filter: filter, Allow: allow}
	for _, a := range acts {
		g.Actions = g.Actions.With(a)
	}
	return g
}

// %u and %c are replaced; values that could widen a filter drop an allow
// and turn a deny into a deny of everything; empty values drop the rule.
func TestBindLogin(t *testing.T) {
	in := &mqtt.Login{Grants: []mqtt.Grant{
		grant("users/%u/#", true, pub),
		grant("clients/%c/in", false, recv),
		grant("fixed/#", true, sub),
	}, Attributes: map[string]string{"tenant": "t1"}}
	for _, tc := range []struct {
		user, client string
		want         []string
	}{
		{"alice", "c1", []string{"users/alice/#", "clients/c1/in", "fixed/#"}},
		{"a/b", "c1", []string{"clients/c1/in", "fixed/#"}},
		{"alice", "c+", []string{"users/alice/#", "#", "fixed/#"}},
		{"", "c1", []string{"clients/c1/in", "fixed/#"}},
		{"$x", "", []string{"fixed/#"}},
	} {
		out := bindLogin(in, &mqtt.ClientInfo{Username: tc.user, ClientID: tc.client})
		var got []string
		for _, g := range out.Grants {
			got = append(got, g.Filter)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("user %q client %q: %v, want %v", tc.user, tc.client, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("user %q client %q: %v, want %v", tc.user, tc.client, got, tc.want)
			}
		}
		if out.Attributes["tenant"] != "t1" {
			t.Fatalf("attributes lost: %v", out.Attributes)
		}
	}
	if in.Grants[0].Filter != "users/%u/#" {
		t.Fatal("bindLogin changed the plugin's Login")
	}
}

// First match wins; a subscribe is refused only by a deny covering it;
// a check no grant matches goes to the topic plugins, and only then.
func TestGrantsDecideBeforeTopicPlugins(t *testing.T) {
	login := &mqtt.Login{Grants: []mqtt.Grant{
		grant("devices/lab/#", false, recv, pub),
		grant("devices/#", true, sub, pub, recv),
		grant("secret/#", false, sub),
	}}
	filter := &countingFilter{res: Allow}
	m := mustNew(t, Options{
		Plugins: map[string]PluginSpec{"auth": {Plugin: &granting{login: login}}, "topics": {Plugin: filter}},
		Auth:    AuthOptions{Plugins: []string{"auth"}},
		Topics:  TopicOptions{Enable: true, Plugins: []string{"topics"}},
	})
	h := m.Hooks()
	c := &mqtt.ClientInfo{ClientID: "c1", Username: "bob"}
	res := h.Auth.Authenticate(context.Background(), c, nil)
	if !res.Allow || res.Login == nil {
		t.Fatalf("auth %+v", res)
	}
	c.SetLogin(res.Login)
	for _, tc := range []struct {
		act   mqtt.Action
		topic string
		allow bool
		asked bool // the topic plugin decides
	}{
		{sub, "devices/#", true, false},            // the lab deny is narrower: enforced per delivery
		{sub, "$share/g/devices/+/t", true, false}, // shared: the inner filter counts
		{recv, "devices/lab/x", false, false},
		{recv, "devices/hall/x", true, false},
		{pub, "devices/lab/x", false, false},
		{pub, "devices/hall/x", true, false},
		{sub, "secret/#", false, false},
		{sub, "secret/a", false, false},
		{pub, "secret/a", true, true}, // the secret deny is for subscribe only
		{sub, "other/x", true, true},
		{recv, "other", true, true},
	} {
		before := filter.calls.Load()
		got := h.Topics.CheckTopic(context.Background(), c, mqtt.TopicRequest{Action: tc.act, Topic: tc.topic})
		asked := filter.calls.Load() != before
		if got.Allow != tc.allow || asked != tc.asked {
			t.Errorf("%v %s: allow %v asked %v, want %v %v", tc.act, tc.topic, got.Allow, asked, tc.allow, tc.asked)
		}
	}
	// In line too: the grants answer without the plugin, which has no
	// in-line answers.
	if res, ok := h.Topics.(mqtt.TopicCheckerNow).CheckTopicNow(c, mqtt.TopicRequest{Action: recv, Topic: "devices/lab/y"}); !ok || res.Allow {
		t.Fatalf("in line: %+v ok %v", res, ok)
	}
	if _, ok := h.Topics.(mqtt.TopicCheckerNow).CheckTopicNow(c, mqtt.TopicRequest{Action: recv, Topic: "other"}); ok {
		t.Fatal("in line answered a check no grant matches and the plugin cannot answer at once")
	}
}

// With topic-check off, grants still decide; what they do not match is
// allowed as before.
func TestGrantsWithTopicCheckOff(t *testing.T) {
	login := &mqtt.Login{Grants: []mqtt.Grant{grant("private/#", false, sub, pub, recv)}}
	m := mustNew(t, Options{
		Plugins: map[string]PluginSpec{"auth": {Plugin: &granting{login: login}}},
		Auth:    AuthOptions{Plugins: []string{"auth"}},
	})
	h := m.Hooks()
	c := &mqtt.ClientInfo{ClientID: "c1"}
	c.SetLogin(h.Auth.Authenticate(context.Background(), c, nil).Login)
	if h.Topics.CheckTopic(context.Background(), c, mqtt.TopicRequest{Action: pub, Topic: "private/x"}).Allow {
		t.Fatal("a denying grant was not enforced with topic-check off")
	}
	if !h.Topics.CheckTopic(context.Background(), c, mqtt.TopicRequest{Action: pub, Topic: "public/x"}).Allow {
		t.Fatal("topic-check off must allow what no grant matches")
	}
}

// In mode all, the Login of the first plugin in config order is kept,
// whichever answered first.
func TestLoginFromFirstAllowingPluginInOrder(t *testing.T) {
	a := &mqtt.Login{Attributes: map[string]string{"from": "a"}}
	b := &mqtt.Login{Attributes: map[string]string{"from": "b"}}
	m := mustNew(t, Options{
		Plugins: map[string]PluginSpec{"a": {Plugin: &granting{login: a}}, "b": {Plugin: &granting{login: b}}},
		Auth:    AuthOptions{Plugins: []string{"b", "a"}, Mode: "all"},
	})
	for range 20 {
		res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{ClientID: "c"}, nil)
		if res.Login == nil || res.Login.Attributes["from"] != "b" {
			t.Fatalf("login %+v, want b's", res.Login)
		}
	}
}

// The grant matchers agree with acl-file and hooks-node on the shared
// filter cases (internal/hooks/aclfile/testdata/acl-cases.json): covers
// for a deny and for publish and receive, overlaps for a subscribe allow.
func TestGrantMatchersAgreeWithSharedCases(t *testing.T) {
	data, err := os.ReadFile("aclfile/testdata/acl-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Filters []struct {
			Rule, Sub        string
			Covers, Overlaps bool
		}
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Filters) == 0 {
		t.Fatal("no filter cases")
	}
	for _, c := range cases.Filters {
		g := mqtt.NewGrant(c.Rule, 0, true)
		if got := g.Covers(c.Sub); got != c.Covers {
			t.Errorf("grant %q covers %q = %v, want %v", c.Rule, c.Sub, got, c.Covers)
		}
		if got := topics.Overlaps(c.Rule, c.Sub); got != c.Overlaps {
			t.Errorf("grant %q overlaps %q = %v, want %v", c.Rule, c.Sub, got, c.Overlaps)
		}
	}
}
