//go:build unix

package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestSharedStore runs a nats-server and three mqttd processes whose
// sessions live in JetStream (storage.type jetstream) and checks that a
// persistent session follows its client between processes, also when the
// node holding it is killed with SIGKILL under load.
func TestSharedStore(t *testing.T) {
	mqttdBin, natsBin := buildBinaries(t, t.TempDir())
	natsURL := startNATS(t, natsBin)
	plugin := newAuthPlugin(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = newNodeStore(t, mqttdBin, fmt.Sprintf("js-node-%d", i+1), natsURL, plugin.url, "jetstream")
		nodes[i].launch()
	}
	for _, n := range nodes {
		n.waitReady()
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	t.Run("3.1.1 session queued on node-1 resumed on node-3", func(t *testing.T) { testResumeElsewhere(t, false, n1, n2, n3) })
	t.Run("5.0 session queued on node-1 resumed on node-3", func(t *testing.T) { testResumeElsewhere(t, true, n1, n2, n3) })
	t.Run("takeover with its queue across processes", func(t *testing.T) { testTakeoverQueue(t, n1, n2, n3) })
	var moved *client
	t.Run("subscriber's node killed under QoS 1 load", func(t *testing.T) { moved = testSubscriberNodeKilled(t, n1, n2, n3) })
	t.Run("restarted node serves its sessions", func(t *testing.T) { testRestartedServes(t, moved, n1, n3) })
	t.Run("publishers' node killed under QoS 1 load", func(t *testing.T) { testPublisherNodeKilled(t, n1, n2) })
	t.Run("shared group member's node killed under QoS 1 load", func(t *testing.T) { testSharedMemberNodeKilled(t, n1, n2, n3) })
}

// persistent3 connects a 3.1.1 client with clean session 0; it reports
// session present. A refused CONNECT (the old node's lease not yet run
// out) is retried until waitWithin.
func persistent3(t *testing.T, n *node, id string, got *collector) (*client, bool) {
	t.Helper()
	c := &client{t: t, id: id, got: got, lost: make(chan time.Time, 1)}
	deadline := time.Now().Add(waitWithin)
	for {
		o := paho.NewClientOptions().AddBroker("tcp://" + n.mqtt).SetClientID(id).
			SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(opWithin).SetKeepAlive(30 * time.Second).SetOrderMatters(true).
			SetDefaultPublishHandler(got.handle).
			SetConnectionLostHandler(func(paho.Client, error) { c.lost <- time.Now() })
		c.Client = paho.NewClient(o)
		tok := c.Connect()
		if tok.WaitTimeout(opWithin) && tok.Error() == nil {
			t.Cleanup(func() {
				if c.IsConnectionOpen() {
					c.Disconnect(50)
				}
			})
			return c, tok.(*paho.ConnectToken).SessionPresent()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: CONNECT to %s: %v", id, n.name, tok.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client5 is an MQTT 5.0 client with a persistent session.
type client5 struct {
	c          *paho5.Client
	got        *collector
	disconnect chan byte // the reason code of the broker's DISCONNECT
	lost       chan time.Time
}

// connect5 connects with clean start 0 and a session expiry of an hour;
// manual, it acknowledges nothing it receives (a queue builds up on the
// broker). It reports session present.
func connect5(t *testing.T, n *node, id string, manual bool) (*client5, bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", n.mqtt, opWithin)
	if err != nil {
		t.Fatal(err)
	}
	c := &client5{got: &collector{}, disconnect: make(chan byte, 1), lost: make(chan time.Time, 1)}
	var once sync.Once
	gone := func() { once.Do(func() { c.lost <- time.Now() }) }
	c.c = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			p := pr.Packet
			c.got.mu.Lock()
			c.got.msgs = append(c.got.msgs, received{p.Topic, string(p.Payload), p.QoS, p.Retain})
			c.got.mu.Unlock()
			return true, nil
		}},
		EnableManualAcknowledgment: manual,
		OnClientError:              func(error) { gone() },
		OnServerDisconnect: func(d *paho5.Disconnect) {
			c.disconnect <- d.ReasonCode
			gone()
		},
		PacketTimeout: opWithin,
	})
	expiry := uint32(3600)
	cp := &paho5.Connect{ClientID: id, KeepAlive: 30, CleanStart: false,
		Properties: &paho5.ConnectProperties{SessionExpiryInterval: &expiry}}
	if manual {
		one := uint16(1)
		cp.Properties.ReceiveMaximum = &one
	}
	ctx, cancel := context.WithTimeout(context.Background(), opWithin)
	defer cancel()
	ack, err := c.c.Connect(ctx, cp)
	if err != nil || ack == nil || ack.ReasonCode != 0 {
		conn.Close()
		t.Fatalf("5.0 CONNECT %s to %s: %v %+v", id, n.name, err, ack)
	}
	t.Cleanup(func() { _ = c.c.Disconnect(&paho5.Disconnect{}) })
	return c, ack.SessionPresent
}

func (c *client5) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opWithin)
	defer cancel()
	ack, err := c.c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || ack == nil || len(ack.Reasons) != 1 || ack.Reasons[0] >= 0x80 {
		t.Fatalf("5.0 SUBSCRIBE %s: %v %+v", filter, err, ack)
	}
}

// checkPerPublisher checks that every payload of want (prefix "<pub>-")
// arrived, in order per publisher; with exact, each once.
func checkPerPublisher(t *testing.T, who string, got []received, want []string, exact bool) {
	t.Helper()
	wantBy := map[string][]string{}
	for _, w := range want {
		p := w[:strings.IndexByte(w, '-')]
		wantBy[p] = append(wantBy[p], w)
	}
	gotBy := map[string][]string{}
	for _, r := range got {
		if i := strings.IndexByte(r.payload, '-'); i > 0 {
			p := r.payload[:i]
			if _, ok := wantBy[p]; ok {
				gotBy[p] = append(gotBy[p], r.payload)
			}
		}
	}
	for p, w := range wantBy {
		if g := gotBy[p]; exact && !slices.Equal(g, w) || !exact && !inOrder(g, w) {
			t.Errorf("%s: from %s got %v, want in order %v", who, p, g, w)
		}
	}
}

// inOrder reports whether want appears in got in order (got may repeat).
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// testResumeElsewhere: a persistent session subscribes on node-1 and goes
// offline; QoS 1 and 2 messages are published on node-2 and node-3; its
// client reconnects to node-3 and gets session present, every message
// once and in order per publisher, and its subscription works there.
func testResumeElsewhere(t *testing.T, v5 bool, n1, n2, n3 *node) {
	const count = 15
	id, filter := "resume-v3", "resume/v3/#"
	if v5 {
		id, filter = "resume-v5", "resume/v5/#"
	}
	topic := strings.TrimSuffix(filter, "#")
	var reconnect func() (*collector, bool)
	if v5 {
		c, _ := connect5(t, n1, id, false)
		c.subscribe(t, filter, 2)
		if err := c.c.Disconnect(&paho5.Disconnect{}); err != nil {
			t.Fatal(err)
		}
		reconnect = func() (*collector, bool) {
			c, present := connect5(t, n3, id, false)
			return c.got, present
		}
	} else {
		c, _ := persistent3(t, n1, id, &collector{})
		c.subscribe(filter, 2)
		c.Disconnect(100)
		reconnect = func() (*collector, bool) {
			c, present := persistent3(t, n3, id, &collector{})
			return c.got, present
		}
	}
	pubs := map[string]*client{"p2": connect(t, n2, id+"-pub-2"), "p3": connect(t, n3, id+"-pub-3")}
	var want []string
	for i := range count {
		for name, p := range pubs {
			qos := byte(1 + i%2)
			m := fmt.Sprintf("%s-q%d-%03d", name, qos, i)
			p.publish(topic+name, qos, false, m)
			want = append(want, m)
		}
	}
	got, present := reconnect()
	if !present {
		t.Fatalf("%s on node-3: session present 0, want 1", id)
	}
	eventually(t, id+" got every queued message", func() bool { return len(got.all()) >= len(want) })
	pubs["p2"].publish(topic+"end", 2, false, "end-1")
	eventually(t, id+" receives on node-3 what is published on node-2", func() bool { return got.has("end-1") })
	checkPerPublisher(t, id, got.all(), want, true)
}

// testTakeoverQueue: a 5.0 client on node-1 holds one unacknowledged
// message and has more queued; the same id connects on node-2: the old
// connection gets DISCONNECT 0x8E within 2 s, the new one session present
// and every message.
func testTakeoverQueue(t *testing.T, n1, n2, n3 *node) {
	const id, count = "takeover-queue", 10
	old, _ := connect5(t, n1, id, true)
	old.subscribe(t, "tq/#", 1)
	pub := connect(t, n3, "takeover-queue-pub")
	var want []string
	for i := range count {
		m := fmt.Sprintf("p-%03d", i)
		pub.publish("tq/x", 1, false, m)
		want = append(want, m)
	}
	eventually(t, "the old connection holds its first message", func() bool { return len(old.got.all()) > 0 })
	c, present := connect5(t, n2, id, false)
	acked := time.Now()
	select {
	case code := <-old.disconnect:
		if code != 0x8E {
			t.Errorf("old connection: DISCONNECT 0x%02x, want 0x8E (session taken over)", code)
		}
		if d := time.Since(acked); d > 2*time.Second {
			t.Errorf("old connection closed %v after the new CONNACK, want within 2s", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the old connection got no DISCONNECT within 2s of the new CONNACK")
	}
	if !present {
		t.Fatal("takeover on node-2: session present 0, want 1")
	}
	eventually(t, "the queue followed to node-2", func() bool { return len(c.got.all()) >= count })
	checkPerPublisher(t, id, c.got.all(), want, false)
}

// loadPub publishes QoS 1 with many messages outstanding and records each
// message the broker acknowledged, until target messages are acknowledged.
// A connection the broker closes is reconnected (clean) and publishing
// goes on with the next message.
type loadPub struct {
	t      *testing.T
	name   string
	node   *node
	topic  string
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	acked  []string
	failed int          // acknowledgements not received (connection lost, refused)
	n      atomic.Int64 // acknowledged
	target atomic.Int64
}

func startLoad(t *testing.T, n *node, name, topic string, target int64) *loadPub {
	p := &loadPub{t: t, name: name, node: n, topic: topic, stop: make(chan struct{}), done: make(chan struct{})}
	p.target.Store(target)
	go p.run()
	t.Cleanup(p.halt)
	return p
}

func (p *loadPub) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *loadPub) run() {
	defer close(p.done)
	const outstanding = 64
	seq := 0
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		o := paho.NewClientOptions().AddBroker("tcp://" + p.node.mqtt).SetClientID(p.name).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(2 * time.Second).SetWriteTimeout(opWithin)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(opWithin) || tok.Error() != nil {
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sem := make(chan struct{}, outstanding)
		var wg sync.WaitGroup
		for c.IsConnectionOpen() {
			if p.n.Load()+int64(len(sem)) >= p.target.Load() {
				select {
				case <-p.stop:
				case <-time.After(5 * time.Millisecond):
					continue
				}
				break
			}
			select {
			case <-p.stop:
			case sem <- struct{}{}:
				seq++
				m := fmt.Sprintf("%s-%06d", p.name, seq)
				tok := c.Publish(p.topic, 1, false, m)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					ok := tok.WaitTimeout(waitWithin) && tok.Error() == nil
					p.mu.Lock()
					if ok {
						p.acked = append(p.acked, m)
						p.n.Add(1)
					} else {
						p.failed++
					}
					p.mu.Unlock()
				}()
				continue
			}
			break
		}
		wg.Wait()
		c.Disconnect(50)
	}
}

func (p *loadPub) ackedSoFar() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

// lossCheck waits until every message acknowledged to pubs reached got,
// then logs what arrived twice and what was never acknowledged.
func lossCheck(t *testing.T, got *collector, pubs ...*loadPub) {
	t.Helper()
	var acked []string
	failed := 0
	for _, p := range pubs {
		p.halt()
		acked = append(acked, p.ackedSoFar()...)
		failed += p.failed
	}
	missing := func() []string {
		have := map[string]bool{}
		for _, r := range got.all() {
			have[r.payload] = true
		}
		var miss []string
		for _, a := range acked {
			if !have[a] {
				miss = append(miss, a)
			}
		}
		return miss
	}
	deadline := time.Now().Add(waitWithin)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	dups := 0
	for _, r := range got.all() {
		if seen[r.payload]++; seen[r.payload] > 1 {
			dups++
		}
	}
	t.Logf("%d messages acknowledged, %d not acknowledged (refused or cut off); received %d, %d of them duplicates",
		len(acked), failed, len(got.all()), dups)
	if miss := missing(); len(miss) > 0 {
		t.Errorf("%d acknowledged messages never arrived (first: %v)", len(miss), miss[:min(len(miss), 10)])
	}
}

// waitAcks lets each publisher go on to n more acknowledgements than it
// has, and waits until it has half of them: it is mid-run then.
func waitAcks(t *testing.T, what string, n int64, pubs ...*loadPub) {
	t.Helper()
	from := make([]int64, len(pubs))
	for i, p := range pubs {
		from[i] = p.n.Load()
		p.target.Store(from[i] + n)
	}
	eventually(t, what, func() bool {
		for i, p := range pubs {
			if p.n.Load() < from[i]+n/2 {
				return false
			}
		}
		return true
	})
}

// testSubscriberNodeKilled: a persistent subscriber on node-1, QoS 1
// publishers on node-2 and node-3; node-1 is killed with SIGKILL mid-run;
// the subscriber reconnects to node-2 once the dead node's lease ran out
// and gets every message a publisher had acknowledged. It returns the
// subscriber, connected to node-2.
func testSubscriberNodeKilled(t *testing.T, n1, n2, n3 *node) *client {
	const id = "kill-sub"
	got := &collector{}
	sub, _ := persistent3(t, n1, id, got)
	sub.subscribe("load/#", 1)
	pubs := []*loadPub{startLoad(t, n2, "lp2", "load/2", 0), startLoad(t, n3, "lp3", "load/3", 0)}
	waitAcks(t, "publishers acknowledged before the kill", 600, pubs...)
	n1.kill9()
	waitAcks(t, "publishers acknowledged after the kill", 400, pubs...)
	for _, p := range pubs {
		p.halt()
	}
	moved, present := persistent3(t, n2, id, got)
	if !present {
		t.Errorf("%s on node-2 after node-1 died: session present 0, want 1", id)
	}
	lossCheck(t, got, pubs...)
	return moved
}

// testRestartedServes: node-1, restarted after SIGKILL, takes the session
// back and delivers to it.
func testRestartedServes(t *testing.T, moved *client, n1, n3 *node) {
	if moved == nil {
		t.Skip("the previous subtest did not leave a session")
	}
	n1.start()
	got := &collector{}
	c, present := persistent3(t, n1, moved.id, got)
	if !present {
		t.Errorf("%s on restarted node-1: session present 0, want 1", moved.id)
	}
	pub := connect(t, n3, "restart-pub")
	pub.publish("load/after", 1, false, "after-restart")
	eventually(t, "restarted node-1 delivers to the session", func() bool { return got.has("after-restart") })
	c.Disconnect(50)
}

// testPublisherNodeKilled: QoS 1 publishers on node-1, a persistent
// subscriber on node-2; node-1 is killed with SIGKILL mid-run: every
// message it acknowledged arrives.
func testPublisherNodeKilled(t *testing.T, n1, n2 *node) {
	if !n1.running() {
		n1.start()
	}
	got := &collector{}
	sub, _ := persistent3(t, n2, "mirror-sub", got)
	sub.subscribe("mirror/#", 1)
	pubs := []*loadPub{startLoad(t, n1, "mp1", "mirror/1", 0), startLoad(t, n1, "mq1", "mirror/2", 0)}
	waitAcks(t, "publishers acknowledged before the kill", 600, pubs...)
	n1.kill9()
	lossCheck(t, got, pubs...)
}

// testSharedMemberNodeKilled: a shared group with a member on node-1 that
// acknowledges nothing (its messages pile up in flight and queued) and a
// member on node-2; a QoS 1 publisher on node-3; node-1 is killed with
// SIGKILL mid-run. Once its session is adopted, what it held goes to the
// member on node-2, which gets every message the publisher had
// acknowledged, the dead member's included.
func testSharedMemberNodeKilled(t *testing.T, n1, n2, n3 *node) {
	if !n1.running() {
		n1.start()
	}
	held, _ := connect5(t, n1, "grp-held", true)
	held.subscribe(t, "$share/kg/kgrp/#", 1)
	live := connect(t, n2, "grp-live")
	live.subscribe("$share/kg/kgrp/#", 1)
	pubs := []*loadPub{startLoad(t, n3, "kp3", "kgrp/x", 0)}
	waitAcks(t, "publisher acknowledged before the kill", 400, pubs...)
	if len(held.got.all()) == 0 {
		t.Fatal("the member on node-1 got nothing before the kill")
	}
	n1.kill9()
	waitAcks(t, "publisher acknowledged after the kill", 200, pubs...)
	lossCheck(t, live.got, pubs...)
}
