package hooks_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// homeTopics is an in-process plugin: a client with a user name may do
// anything under users/<its name>/, anyone may receive from public/, and
// a deny of someone else's tree says 0x87. It has no opinion on anything
// else (Ignore), so topic-check.default decides that.
type homeTopics struct{}

func (homeTopics) FilterTopic(_ context.Context, c *mqtt.ClientInfo, r mqtt.TopicRequest) (hooks.Decision, error) {
	switch {
	case c.Username != "" && strings.HasPrefix(r.Topic, "users/"+c.Username+"/"):
		return hooks.Decision{Result: hooks.Allow}, nil
	case strings.HasPrefix(r.Topic, "users/"):
		return hooks.Decision{Result: hooks.Deny, ReasonCode: 0x87, Reason: "not your tree"}, nil
	case r.Action == mqtt.ActionReceive && strings.HasPrefix(r.Topic, "public/"):
		return hooks.Decision{Result: hooks.Allow}, nil
	}
	return hooks.Decision{}, nil
}

// Authenticate lets in any client that gives a user name.
func (homeTopics) Authenticate(_ context.Context, req *hooks.AuthRequest) (hooks.Decision, error) {
	if req.Client.Username == "" {
		return hooks.Decision{}, nil // anonymous: auth.allow-anonymous decides
	}
	return hooks.Decision{Result: hooks.Allow}, nil
}

// A Manager built around one in-process plugin, used as the broker would
// use it: Hooks() is what goes into mqtt.Options, and its Auth and Topics
// are the authenticate and topic_filtering chains.
func ExampleManager() {
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"home": {Plugin: homeTopics{}}},
		Auth:    hooks.AuthOptions{Plugins: []string{"home"}, AllowAnonymous: false},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"home"}, Default: hooks.Deny},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		panic(err)
	}
	defer m.Close(ctx)
	h := m.Hooks()

	alice := &mqtt.ClientInfo{ClientID: "phone-1", Username: "alice", ProtocolVersion: 5}
	anon := &mqtt.ClientInfo{ClientID: "guest", ProtocolVersion: 5}
	for _, c := range []*mqtt.ClientInfo{alice, anon} {
		res := h.Auth.Authenticate(ctx, c, nil)
		fmt.Printf("CONNECT %q: allow=%v code=%#x\n", c.Username, res.Allow, res.ReasonCode)
	}

	for _, r := range []mqtt.TopicRequest{
		{Action: mqtt.ActionPublish, Topic: "users/alice/status", QoS: 1},
		{Action: mqtt.ActionSubscribe, Topic: "users/bob/#"},
		{Action: mqtt.ActionReceive, Topic: "public/news"},
		// Every plugin ignores: topic-check.default denies, with code 0,
		// which the broker sends as 0x87.
		{Action: mqtt.ActionPublish, Topic: "public/news"},
	} {
		res := h.Topics.CheckTopic(ctx, alice, r)
		fmt.Printf("%-9s %-18s allow=%v code=%#x", r.Action, r.Topic, res.Allow, res.ReasonCode)
		if res.Reason != "" {
			fmt.Printf(" (%s)", res.Reason)
		}
		fmt.Println()
	}
	// Output:
	// CONNECT "alice": allow=true code=0x0
	// CONNECT "": allow=false code=0x87
	// publish   users/alice/status allow=true code=0x0
	// subscribe users/bob/#        allow=false code=0x87 (not your tree)
	// receive   public/news        allow=true code=0x0
	// publish   public/news        allow=false code=0x0
}
