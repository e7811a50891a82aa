package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The only member of a shared group, a persistent session, leaves with QoS
// 1 messages it did not acknowledge: with nobody else to take them they
// stay queued for it and come again when it resumes, rather than being
// dropped.
func TestSharedSoleMemberKeepsUnacked(t *testing.T) {
	tb := startBroker(t, nil)
	got := make(chan string, 100)
	handler := func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }
	member := pahoClient(t, tb.addr, "sole-member", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetAutoAckDisabled(true).SetDefaultPublishHandler(handler)
	})
	waitToken(t, "subscribe", member.Subscribe("$share/g/sole/t", 1, nil))
	pub := pahoClient(t, tb.addr, "sole-pub", nil)
	const n = 3
	for i := range n {
		waitToken(t, "publish", pub.Publish("sole/t", 1, false, fmt.Sprint(i)))
	}
	take := func(what string) map[string]bool {
		seen := map[string]bool{}
		for len(seen) < n {
			select {
			case p := <-got:
				seen[p] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %d of %d messages: %v", what, len(seen), n, seen)
			}
		}
		return seen
	}
	take("before leaving") // and acknowledged none
	member.Disconnect(50)
	// Gone for the broker before it comes back: its session no longer
	// holds the messages.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := tb.Client("sole-member")
		if ok && !v.Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member's connection did not end")
		}
		time.Sleep(time.Millisecond)
	}
	pahoClient(t, tb.addr, "sole-member", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetDefaultPublishHandler(handler)
	})
	take("after resuming")
}
