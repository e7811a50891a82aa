package hooks

import (
	"context"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// nowFilter answers at once with d when ok, and its slow FilterTopic (never
// expected here) fails the test.
type nowFilter struct {
	t  *testing.T
	d  Decision
	ok bool
}

func (f *nowFilter) FilterTopic(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
	f.t.Error("CheckTopicNow called the slow FilterTopic")
	return Decision{}, nil
}

func (f *nowFilter) FilterTopicNow(*mqtt.ClientInfo, mqtt.TopicRequest) (Decision, bool) {
	return f.d, f.ok
}

// The chain decides at once only when every topic plugin can, by the same
// rules as CheckTopic.
func TestCheckTopicNow(t *testing.T) {
	allow, deny, ignore := Decision{Result: Allow}, Decision{Result: Deny, ReasonCode: 0x97, Reason: "quota"}, Decision{}
	slowOnly := topicFunc(func(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) { return allow, nil })
	for _, tc := range []struct {
		name     string
		a, b     Plugin
		fallback Result
		ok       bool
		want     mqtt.TopicResult
	}{
		{"both allow", &nowFilter{t, allow, true}, &nowFilter{t, allow, true}, Deny, true, mqtt.TopicResult{Allow: true}},
		{"a deny wins", &nowFilter{t, allow, true}, &nowFilter{t, deny, true}, Allow, true, mqtt.TopicResult{ReasonCode: 0x97, Reason: "quota"}},
		{"all ignore, default deny", &nowFilter{t, ignore, true}, &nowFilter{t, ignore, true}, Deny, true, mqtt.TopicResult{}}, // code 0: the broker says 0x87
		{"all ignore, default allow", &nowFilter{t, ignore, true}, &nowFilter{t, ignore, true}, Allow, true, mqtt.TopicResult{Allow: true}},
		{"one has no answer at hand", &nowFilter{t, allow, true}, &nowFilter{t, allow, false}, Allow, false, mqtt.TopicResult{}},
		{"one cannot answer at once at all", &nowFilter{t, allow, true}, slowOnly, Allow, false, mqtt.TopicResult{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustNew(t, Options{
				Plugins: map[string]PluginSpec{"a": {Plugin: tc.a}, "b": {Plugin: tc.b}},
				Topics:  TopicOptions{Enable: true, Plugins: []string{"a", "b"}, Default: tc.fallback},
			})
			now, isNow := m.Hooks().Topics.(mqtt.TopicCheckerNow)
			if !isNow {
				t.Fatal("the topic chain does not offer CheckTopicNow")
			}
			req := mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t", QoS: 1}
			got, ok := now.CheckTopicNow(&mqtt.ClientInfo{ClientID: "c"}, req)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("CheckTopicNow = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
