package topics_test

import (
	"fmt"
	"slices"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// Filters against topic names: '+' is exactly one level, '#' is this level
// and everything below it, and wildcards at the start never reach topics
// beginning with '$' (the broker's own $SYS tree).
func ExampleMatchFilter() {
	for _, c := range []struct{ filter, topic string }{
		{"sensors/+/temp", "sensors/kitchen/temp"},
		{"sensors/+/temp", "sensors/kitchen/oven/temp"},
		{"sensors/#", "sensors"},
		{"sensors/#", "sensors/kitchen/oven/temp"},
		{"#", "$SYS/broker/uptime"},
		{"$SYS/#", "$SYS/broker/uptime"},
	} {
		fmt.Printf("%-15s %-26s %v\n", c.filter, c.topic, topics.MatchFilter(c.filter, c.topic))
	}
	// Output:
	// sensors/+/temp  sensors/kitchen/temp       true
	// sensors/+/temp  sensors/kitchen/oven/temp  false
	// sensors/#       sensors                    true
	// sensors/#       sensors/kitchen/oven/temp  true
	// #               $SYS/broker/uptime         false
	// $SYS/#          $SYS/broker/uptime         true
}

// A Tree maps filters to subscribers: here client ids with the QoS they
// asked for. Match calls back once per matching subscription, in no
// particular order.
func ExampleTree() {
	t := topics.NewTree[string, byte]()
	t.Subscribe("home/+/light", "panel", 1)
	t.Subscribe("home/#", "logger", 0)
	t.Subscribe("home/kitchen/light", "kitchen-switch", 2)
	t.Subscribe("office/#", "office-bot", 1)

	var got []string
	t.Match("home/kitchen/light", func(client string, qos byte) {
		got = append(got, fmt.Sprintf("%s@%d", client, qos))
	})
	slices.Sort(got)
	fmt.Println(got)

	t.Unsubscribe("home/#", "logger")
	fmt.Println(t.Len(), "subscriptions left")
	// Output:
	// [kitchen-switch@2 logger@0 panel@1]
	// 3 subscriptions left
}
