package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A will is a publish by its client: the topic check decides it when it
// would be sent, with the client's identity. A client refused PUBLISH under
// door/ cannot get a message there through its will, immediate or delayed,
// retained or not, nor delete a retained message there with an empty
// retained will. A will the check allows still goes out.
func TestWillDeniedByTopicCheck(t *testing.T) {
	sink := &recordingSink{mask: EventMask(0).With(EventClientDisconnected)}
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Topics = denyUserTopics("mallory", ActionPublish, "door/")
		o.Hooks.Events = sink
	})
	owner := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "owner", CleanStart: true}, "owner")
	if ack := owner.publish1(1, "door/1/cmd", "keep", true); ack.ReasonCode != 0 {
		t.Fatalf("owner's retained publish: PUBACK %v", ack.ReasonCode)
	}
	watch := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "watch", CleanStart: true}, "watch")
	watch.subscribe(1, "door/#", 1)
	if got := watch.nextPayload(2 * time.Second); got != "keep" {
		t.Fatalf("retained %q, want keep", got)
	}
	// sentinel proves the watcher got nothing before it: the owner publishes
	// after the will was handled, and the next message must be the owner's.
	sentinel := func(pid uint16, what string) {
		owner.publish1(pid, "door/1/status", what, false)
		if got := watch.nextPayload(2 * time.Second); got != what {
			t.Fatalf("%s: watcher got %q before the sentinel", what, got)
		}
	}
	dropped := func() int64 { return tb.Stats().DroppedWillDenied }

	{ // immediate retained
		before := dropped()
		m := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "mallory-1", CleanStart: true,
			WillFlag: true, WillTopic: "door/1/cmd", WillQoS: 1, WillRetain: true, WillPayload: []byte("open")}, "mallory")
		m.conn.Close()
		waitDisconnected(t, sink, "mallory-1")
		sentinel(2, "after immediate")
		if got, _ := retainedPayload(tb.Broker, "door/1/cmd"); got != "keep" {
			t.Fatalf("retained on door/1/cmd: %q, want keep", got)
		}
		if dropped() <= before {
			t.Fatalf("denied will not counted (dropped %d → %d)", before, dropped())
		}
	}
	{ // empty retained
		m := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "mallory-2", CleanStart: true,
			WillFlag: true, WillTopic: "door/1/cmd", WillQoS: 0, WillRetain: true}, "mallory")
		m.conn.Close()
		waitDisconnected(t, sink, "mallory-2")
		sentinel(3, "after empty")
		if got, ok := retainedPayload(tb.Broker, "door/1/cmd"); !ok || got != "keep" {
			t.Fatalf("retained on door/1/cmd: %q (present %v), want keep", got, ok)
		}
	}
	{ // delayed
		p := &packets.Connect{ClientID: "mallory-3", CleanStart: true,
			WillFlag: true, WillTopic: "door/1/cmd", WillQoS: 1, WillPayload: []byte("later")}
		p.Props.SessionExpiry = 60
		p.WillProps.WillDelay = 1
		m := connectAs(t, tb.addr, packets.V5, p, "mallory")
		m.conn.Close()
		waitDisconnected(t, sink, "mallory-3")
		s, ok := tb.store.Get("mallory-3")
		if !ok {
			t.Fatal("mallory-3's session is gone")
		}
		waitFor(t, "the will delay to run out", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.willTimer == nil
		})
		sentinel(4, "after delayed")
		watch.expectNothing(300 * time.Millisecond) // nor just after it
		if got := dropped(); got != 3 {
			t.Fatalf("%d wills counted as denied, want 3", got)
		}
	}
	{ // allowed will still goes out
		m := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "owner-2", CleanStart: true,
			WillFlag: true, WillTopic: "door/2/cmd", WillQoS: 1, WillPayload: []byte("bye")}, "owner")
		m.conn.Close()
		if got := watch.nextPayload(2 * time.Second); got != "bye" {
			t.Fatalf("allowed will: got %q", got)
		}
	}
}
