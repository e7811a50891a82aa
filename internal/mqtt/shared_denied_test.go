package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// shareRights is a topic checker for a shared group whose members have
// different rights: "share-b" may not receive lab/..., and nobody may
// receive deny/.... It answers only through CheckTopic (the check runs on
// the receiver's writer goroutine).
type shareRights struct{}

func (shareRights) allow(ci *ClientInfo, r TopicRequest) TopicResult {
	if r.Action != ActionReceive {
		return TopicResult{Allow: true}
	}
	denied := strings.HasPrefix(r.Topic, "deny/") || ci.ClientID == "share-b" && strings.HasPrefix(r.Topic, "lab/")
	return TopicResult{Allow: !denied}
}

func (c shareRights) CheckTopic(_ context.Context, ci *ClientInfo, r TopicRequest) TopicResult {
	return c.allow(ci, r)
}

// shareRightsNow answers the same rules in line, on the publisher's
// goroutine.
type shareRightsNow struct{ shareRights }

func (c shareRightsNow) CheckTopicNow(ci *ClientInfo, r TopicRequest) (TopicResult, bool) {
	return c.allow(ci, r), true
}

// shareInbox records what one member received, by topic and payload.
type shareInbox struct {
	mu  sync.Mutex
	got map[string]int // "topic payload" -> times received
}

func (in *shareInbox) add(_ paho.Client, m paho.Message) {
	in.mu.Lock()
	in.got[m.Topic()+" "+string(m.Payload())]++
	in.mu.Unlock()
}

// count returns how many distinct messages under prefix arrived, and how
// many arrived more than once.
func (in *shareInbox) count(prefix string) (n, dup int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, v := range in.got {
		if strings.HasPrefix(k, prefix) {
			n++
			if v > 1 {
				dup++
			}
		}
	}
	return n, dup
}

// A message for a shared group goes to a member allowed to receive it:
// member B may not receive lab/..., so member A gets every lab message
// while the dev messages are still split between both; nothing is lost.
// When no member may receive a message it is dropped for the group and
// counted. Both with a checker answering in line and with one whose answer
// comes on the receiver's writer goroutine (the message is handed back to
// the group).
func TestSharedDeliveryOffersDeniedToNextMember(t *testing.T) {
	for _, tc := range []struct {
		name string
		chk  TopicChecker
	}{
		{"in-line", shareRightsNow{}},
		{"on-writer", shareRights{}},
	} {
		t.Run(tc.name, func(t *testing.T) { testSharedDenied(t, tc.chk) })
	}
}

func testSharedDenied(t *testing.T, chk TopicChecker) {
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = chk })
	a, b := &shareInbox{got: map[string]int{}}, &shareInbox{got: map[string]int{}}
	for _, m := range []struct {
		id string
		in *shareInbox
	}{{"share-a", a}, {"share-b", b}} {
		c := pahoClient(t, tb.addr, m.id, nil)
		waitToken(t, "subscribe "+m.id, c.Subscribe("$share/g/+/x", 1, m.in.add))
	}
	pub := pahoClient(t, tb.addr, "share-pub", nil)
	publish := func(topic string, n int) {
		for i := range n {
			waitToken(t, "publish", pub.Publish(topic, 1, false, fmt.Sprint(i)))
		}
	}

	const n = 40
	publish("lab/x", n)
	publish("dev/x", n)
	waitFor(t, "every lab message at A and every dev message at A or B", func() bool {
		lab, _ := a.count("lab/x ")
		devA, _ := a.count("dev/x ")
		devB, _ := b.count("dev/x ")
		return lab == n && devA+devB == n
	})
	if lab, _ := b.count("lab/x "); lab != 0 {
		t.Fatalf("B, denied lab/..., received %d lab messages", lab)
	}
	devA, dupA := a.count("dev/x ")
	devB, dupB := b.count("dev/x ")
	if devA == 0 || devB == 0 {
		t.Fatalf("dev messages not split: A %d, B %d", devA, devB)
	}
	if _, dup := a.count("lab/x "); dup+dupA+dupB != 0 {
		t.Fatalf("duplicates: lab %d, dev at A %d, at B %d", dup, dupA, dupB)
	}
	if got := tb.Stats().DroppedShareDenied; got != 0 {
		t.Fatalf("DroppedShareDenied = %d while a member could receive each message", got)
	}

	// Nobody may receive deny/x: dropped for the group, counted once per
	// message; the group goes on receiving afterwards.
	const m = 10
	publish("deny/x", m)
	waitFor(t, "the denied messages to be counted", func() bool { return tb.Stats().DroppedShareDenied == m })
	waitToken(t, "publish", pub.Publish("lab/x", 1, false, "after"))
	waitFor(t, "a lab message after the denied ones", func() bool {
		lab, _ := a.count("lab/x after")
		return lab == 1
	})
	if got, _ := b.count("deny/"); got != 0 {
		t.Fatalf("B received %d denied messages", got)
	}
	if got, _ := a.count("deny/"); got != 0 {
		t.Fatalf("A received %d denied messages", got)
	}
}

// labOnlyA lets only "share-a" receive lab/..., answering on the
// receiver's writer goroutine.
type labOnlyA struct{}

func (labOnlyA) CheckTopic(_ context.Context, ci *ClientInfo, r TopicRequest) TopicResult {
	return TopicResult{Allow: r.Action != ActionReceive || ci.ClientID == "share-a" || !strings.HasPrefix(r.Topic, "lab/")}
}

// A message can be handed back more than once: with three members of whom
// two are denied, a message first offered to one of those passes through
// every refusing member's writer and reaches the allowed one, exactly once.
// (That a hand-back carries who refused it is what ends the all-deny case
// of TestSharedDeliveryOffersDeniedToNextMember: without it the two
// members would pass the message back and forth for ever.)
func TestSharedHandBackPassesEveryRefusingMember(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = labOnlyA{} })
	inboxes := map[string]*shareInbox{}
	for _, id := range []string{"share-a", "share-b", "share-c"} {
		in := &shareInbox{got: map[string]int{}}
		inboxes[id] = in
		c := pahoClient(t, tb.addr, id, nil)
		waitToken(t, "subscribe "+id, c.Subscribe("$share/g/lab/#", 1, in.add))
	}
	pub := pahoClient(t, tb.addr, "share-pub", nil)
	const n = 30
	for i := range n {
		waitToken(t, "publish", pub.Publish("lab/x", 1, false, fmt.Sprint(i)))
	}
	waitFor(t, "every lab message at A", func() bool {
		got, _ := inboxes["share-a"].count("lab/")
		return got == n
	})
	if _, dup := inboxes["share-a"].count("lab/"); dup != 0 {
		t.Fatalf("A got %d lab messages more than once", dup)
	}
	for _, id := range []string{"share-b", "share-c"} {
		if got, _ := inboxes[id].count("lab/"); got != 0 {
			t.Fatalf("%s, denied lab/..., received %d", id, got)
		}
	}
	if got := tb.Stats().DroppedShareDenied; got != 0 {
		t.Fatalf("DroppedShareDenied = %d while A could receive each message", got)
	}
}
