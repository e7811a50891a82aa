package mqtt

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// topic60 is a 60-byte topic ending in i.
func topic60(i int) string {
	s := fmt.Sprintf("site/%02d/", i)
	return s + strings.Repeat("x", 60-len(s))
}

// connectAliasV5 connects a raw MQTT 5 client announcing Topic Alias
// Maximum max (0: absent) and counts the bytes it reads into n (when not
// nil). A client that is not clean keeps its session for 300 s.
func connectAliasV5(t *testing.T, addr, id string, max uint16, clean bool, n *atomic.Int64) *rawClient {
	t.Helper()
	c := dialRawV5(t, addr)
	if n != nil {
		c.r = bufio.NewReader(&countingReader{r: c.conn, n: n})
	}
	p := &packets.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	p.Props.TopicAliasMaximum = max
	if !clean {
		p.Props.SessionExpiry = 300
	}
	if ack := c.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, id)
	}
	return c
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// aliasResolver resolves the topic aliases a client receives, failing on
// an alias it was never told or one above its maximum.
type aliasResolver struct {
	max    uint16
	topics map[uint16]string
}

func (r *aliasResolver) resolve(p *packets.Publish) (string, error) {
	a := p.Props.TopicAlias
	switch {
	case a == 0 && p.Topic == "":
		return "", fmt.Errorf("PUBLISH with neither topic nor alias")
	case a == 0:
		return p.Topic, nil
	case a > r.max:
		return "", fmt.Errorf("alias %d above the maximum %d", a, r.max)
	case p.Topic != "":
		r.topics[a] = p.Topic
		return p.Topic, nil
	}
	t, ok := r.topics[a]
	if !ok {
		return "", fmt.Errorf("alias %d never set", a)
	}
	return t, nil
}

func TestOutAliasesLRU(t *testing.T) {
	tab := newOutAliases(2)
	send := func(topic string, wantAlias uint16, wantKnown bool) {
		t.Helper()
		a, known := tab.pick(topic)
		if a != wantAlias || known != wantKnown {
			t.Fatalf("%s: alias %d known %v, want %d %v", topic, a, known, wantAlias, wantKnown)
		}
		tab.commit(topic, a, known)
	}
	send("topic/A", 1, false)
	send("topic/B", 2, false)
	send("topic/A", 1, true)
	send("topic/C", 2, false) // B is least recently used: its alias is re-mapped
	send("topic/B", 1, false) // now A is
	send("topic/C", 2, true)
	send("topic/B", 1, true)
	send("topic/B", 1, true)  // already the most recent
	send("topic/D", 2, false) // C is least recently used
	send("topic/B", 1, true)
	if len(tab.byTopic) != 2 || len(tab.ents) != 3 {
		t.Fatalf("table holds %d topics, %d entries; want 2, 3", len(tab.byTopic), len(tab.ents))
	}
}

// A client announcing Topic Alias Maximum gets a repeated topic by alias
// after the first PUBLISH; one announcing none (or 0) never sees an alias;
// a topic too short to gain from an alias is always sent in full.
func TestServerTopicAliasRaw(t *testing.T) {
	tb := startBroker(t, nil)
	long := topic60(1)
	with := connectAliasV5(t, tb.addr, "with", 10, true, nil)
	without := connectAliasV5(t, tb.addr, "without", 0, true, nil)
	for _, c := range []*rawClient{with, without} {
		c.subscribe(1, "site/#", 1)
		c.subscribe(2, "abc", 1)
	}
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	for i := range 3 {
		pub.publish1(uint16(i+1), long, fmt.Sprint("long ", i), false)
		pub.publish1(uint16(i+10), "abc", fmt.Sprint("short ", i), false)
	}
	res := &aliasResolver{max: 10, topics: map[uint16]string{}}
	var aliasOnly int
	for i := range 6 {
		p := with.expectPublish(2 * time.Second)
		with.ack(p)
		topic, err := res.resolve(p)
		if err != nil {
			t.Fatal(err)
		}
		want := long
		if i%2 == 1 {
			want = "abc"
			if p.Props.TopicAlias != 0 {
				t.Fatalf("3-byte topic sent with alias %d", p.Props.TopicAlias)
			}
		}
		if topic != want {
			t.Fatalf("message %d resolved to %q, want %q", i, topic, want)
		}
		if p.Topic == "" {
			aliasOnly++
		}
		if i == 0 && (p.Topic != long || p.Props.TopicAlias != 1) {
			t.Fatalf("first PUBLISH: topic %q alias %d, want the full topic and alias 1", p.Topic, p.Props.TopicAlias)
		}
	}
	if aliasOnly != 2 {
		t.Fatalf("%d of the 2 repeats of the long topic were sent by alias alone", aliasOnly)
	}
	for range 6 {
		p := without.expectPublish(2 * time.Second)
		without.ack(p)
		if p.Props.Has(packets.PropTopicAlias) || p.Topic == "" {
			t.Fatalf("client without Topic Alias Maximum got topic %q alias %d", p.Topic, p.Props.TopicAlias)
		}
	}
}

// After a reconnect the client knows no alias: the message resent with DUP
// and the next ones carry their topic before any alias is used again.
func TestServerTopicAliasReconnect(t *testing.T) {
	tb := startBroker(t, nil)
	long := topic60(2)
	sub := connectAliasV5(t, tb.addr, "persist", 10, false, nil)
	sub.subscribe(1, long, 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	pub.publish1(1, long, "one", false)
	pub.publish1(2, long, "two", false)
	first := sub.expectPublish(2 * time.Second)
	sub.ack(first)
	second := sub.expectPublish(2 * time.Second)
	if first.Topic != long || second.Topic != "" || second.Props.TopicAlias != first.Props.TopicAlias {
		t.Fatalf("before reconnect: %q/%d then %q/%d", first.Topic, first.Props.TopicAlias, second.Topic, second.Props.TopicAlias)
	}
	// "two" stays unacknowledged; the session outlives the connection.
	sub.conn.Close()
	waitOffline(t, tb, "persist")
	pub.publish1(3, long, "three", false) // queued while offline

	sub = connectAliasV5(t, tb.addr, "persist", 10, false, nil)
	res := &aliasResolver{max: 10, topics: map[uint16]string{}}
	for i, want := range []string{"two", "three"} {
		p := sub.expectPublish(2 * time.Second)
		sub.ack(p)
		topic, err := res.resolve(p)
		if err != nil {
			t.Fatalf("after reconnect, %q: %v", p.Payload, err)
		}
		if string(p.Payload) != want || topic != long {
			t.Fatalf("after reconnect got %q on %q, want %q on %q", p.Payload, topic, want, long)
		}
		if i == 0 && (!p.Dup || p.Topic != long) {
			t.Fatalf("resent PUBLISH: dup %v topic %q, want DUP with the full topic", p.Dup, p.Topic)
		}
	}
	pub.publish1(4, long, "four", false)
	p := sub.expectPublish(2 * time.Second)
	if p.Topic != "" || p.Props.TopicAlias == 0 {
		t.Fatalf("a topic the new connection learned is not sent by alias: %q/%d", p.Topic, p.Props.TopicAlias)
	}
}

// paho.golang's router resolves the aliases: with more distinct topics
// than the client's maximum, every message still reaches the handler of
// its own topic.
func TestServerTopicAliasPaho(t *testing.T) {
	tb := startBroker(t, nil)
	const ntopics, rounds, max = 8, 5, 3
	var mu sync.Mutex
	got := map[string][]string{}
	var byAlias int // messages that came with an empty topic
	all := make(chan struct{}, ntopics*rounds)
	router := pahov5.NewStandardRouter()
	for i := range ntopics {
		topic := topic60(i)
		router.RegisterHandler(topic, func(p *pahov5.Publish) {
			mu.Lock()
			got[topic] = append(got[topic], string(p.Payload))
			if p.Topic == "" && p.Properties != nil && p.Properties.TopicAlias != nil {
				byAlias++
			}
			mu.Unlock()
			all <- struct{}{}
		})
	}
	sub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "paho-alias", CleanStart: true,
		Properties: &pahov5.ConnectProperties{TopicAliasMaximum: ptr(uint16(max))}},
		func(cfg *pahov5.ClientConfig) {
			cfg.OnPublishReceived = nil
			cfg.Router = router
		})
	sub.sub(0, pahov5.SubscribeOptions{Topic: "site/#", QoS: 1})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "paho-pub", CleanStart: true}, nil)
	for r := range rounds {
		for i := range ntopics {
			// The first topic repeats between the others, so it keeps its alias.
			for _, j := range []int{0, i} {
				pub.pub(&pahov5.Publish{Topic: topic60(j), QoS: 1, Payload: []byte(fmt.Sprintf("%d/%d", j, r))})
			}
		}
	}
	want := ntopics*rounds + ntopics*rounds
	for n := 0; n < want; n++ {
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d messages reached their handler", n, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range ntopics {
		for _, p := range got[topic60(i)] {
			if !strings.HasPrefix(p, fmt.Sprintf("%d/", i)) {
				t.Fatalf("payload %q reached the handler of topic %d", p, i)
			}
		}
	}
	if n := len(got[topic60(0)]); n != rounds*(ntopics+1) {
		t.Fatalf("topic 0 got %d messages, want %d", n, rounds*(ntopics+1))
	}
	if byAlias < rounds*ntopics-1 { // at least every repeat of topic 0
		t.Fatalf("only %d of %d messages came by alias", byAlias, want)
	}
	t.Logf("%d of %d messages came by alias alone", byAlias, want)
}

// TestServerTopicAliasFanOutBytes measures what aliases save on the wire:
// one publisher, ten MQTT 5 subscribers, 1000 messages of 64 bytes over ten
// 60-byte topics, counted in bytes the subscribers read, once with a Topic
// Alias Maximum of 10 and once without. Every message must resolve to the
// topic it was published on.
func TestServerTopicAliasFanOutBytes(t *testing.T) {
	const nsubs, nmsgs, ntopics = 10, 1000, 10
	run := func(max uint16) int64 {
		tb := startBroker(t, nil)
		var read atomic.Int64
		subs := make([]*rawClient, nsubs)
		for i := range subs {
			subs[i] = connectAliasV5(t, tb.addr, fmt.Sprintf("fan-%d", i), max, true, &read)
			subs[i].subscribe(1, "site/#", 0)
		}
		read.Store(0) // count the messages only
		errs := make(chan error, nsubs)
		for _, c := range subs {
			go func() { errs <- readFanOut(c, max, nmsgs, ntopics) }()
		}
		pub := dialRawV5(t, tb.addr)
		pub.mustConnect("fan-pub", true)
		payload := strings.Repeat("p", 64)
		for i := range nmsgs {
			pub.send(&packets.Publish{Topic: topic60(i % ntopics), Payload: []byte(fmt.Sprintf("%s%04d", payload[:60], i))})
		}
		for range subs {
			if err := <-errs; err != nil {
				t.Fatalf("max %d: %v", max, err)
			}
		}
		return read.Load()
	}
	without := run(0)
	with := run(10)
	ratio := float64(with) / float64(without)
	t.Logf("fan-out bytes read by %d subscribers: %d with aliases, %d without: %.3fx", nsubs, with, without, ratio)
	// 60 bytes of topic become 3 of alias: 129-byte packets become 72.
	if ratio > 0.6 {
		t.Fatalf("aliases saved too little: %.3fx", ratio)
	}
}

// readFanOut reads nmsgs QoS 0 messages and checks each resolves to the
// topic its payload's sequence number was published on.
func readFanOut(c *rawClient, max uint16, nmsgs, ntopics int) error {
	res := &aliasResolver{max: max, topics: map[uint16]string{}}
	for i := range nmsgs {
		pk, err := c.tryRead(10 * time.Second)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		p, ok := pk.(*packets.Publish)
		if !ok {
			return fmt.Errorf("got %v, want PUBLISH", pk.Type())
		}
		topic, err := res.resolve(p)
		if err != nil {
			return err
		}
		var seq int
		fmt.Sscanf(string(p.Payload[60:]), "%d", &seq)
		if seq != i || topic != topic60(seq%ntopics) {
			return fmt.Errorf("message %d: seq %d on %q", i, seq, topic)
		}
		if max == 0 && p.Props.TopicAlias != 0 {
			return fmt.Errorf("alias %d sent to a client that allowed none", p.Props.TopicAlias)
		}
	}
	return nil
}

// A new alias adds 3 bytes; where that would take a PUBLISH past the
// client's Maximum Packet Size the message goes with its topic and no
// alias instead of being dropped.
func TestServerTopicAliasMaxPacketSize(t *testing.T) {
	tb := startBroker(t, nil)
	long := topic60(3)
	c := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "small", CleanStart: true, KeepAlive: 60}
	p.Props.TopicAliasMaximum = 10
	p.Props.MaximumPacketSize = 2 + 2 + 60 + 1 + 10 // the PUBLISH below with no alias
	if ack := c.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	c.subscribe(1, long, 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	for i := range 2 {
		pub.publish1(uint16(i+1), long, fmt.Sprintf("payload-%02d", i), false)
		got := c.expectPublish(2 * time.Second)
		if got.Topic != long || got.Props.TopicAlias != 0 || string(got.Payload) != fmt.Sprintf("payload-%02d", i) {
			t.Fatalf("message %d: topic %q alias %d payload %q", i, got.Topic, got.Props.TopicAlias, got.Payload)
		}
	}
}

// Retained messages take the same path: sent again on a new subscription,
// a retained message's topic goes by the alias the first one set.
func TestServerTopicAliasRetained(t *testing.T) {
	tb := startBroker(t, nil)
	long := topic60(4)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("pub", true)
	pub.publish1(1, long, "kept", true)
	c := connectAliasV5(t, tb.addr, "retained", 5, true, nil)
	res := &aliasResolver{max: 5, topics: map[uint16]string{}}
	for i := range 2 {
		c.subscribe(uint16(i+1), long, 1)
		p := c.expectPublish(2 * time.Second)
		c.ack(p)
		topic, err := res.resolve(p)
		if err != nil || topic != long || !p.Retain || string(p.Payload) != "kept" {
			t.Fatalf("retained %d: %q on %q (%v), retain %v", i, p.Payload, topic, err, p.Retain)
		}
		if i == 1 && p.Topic != "" {
			t.Fatalf("second retained delivery carries its topic %q, want the alias alone", p.Topic)
		}
	}
}
