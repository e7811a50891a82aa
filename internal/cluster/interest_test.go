package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// synced waits until tn knows every other node's interest (it no longer
// forwards everything).
func synced(t *testing.T, tns ...*testNode) {
	t.Helper()
	for _, tn := range tns {
		waitFor(t, tn.name+" to know the other nodes' interest", func() bool { return !tn.node.Forwarding() })
	}
}

// counts are a node's forwarded and skipped messages.
func counts(tn *testNode) (fwd, skip int64) {
	return tn.node.stats.Forwarded.Load(), tn.node.stats.ForwardSkipped.Load()
}

// A message published on one node right after another node's SUBACK for a
// new filter arrives, every time: the SUBACK waited until the publisher's
// node had the filter in its table. Fresh filters each round (exact, '+',
// '#', shared), subscribers on two nodes; most rounds the publisher's node
// is not forwarding everything, so the table decides.
func TestPublishRightAfterSubackAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2, n3 := startNode(t, ns, "n1"), startNode(t, ns, "n2"), startNode(t, ns, "n3")
	synced(t, n1, n2, n3)
	pub := client(t, n1, "pub", true)
	subs := []*received{newReceived(), newReceived()}
	cs := []pahoClient{clientWith(t, n2, "s2", true, subs[0]), clientWith(t, n3, "s3", true, subs[1])}
	tabled := 0
	for i := range 200 {
		k := i % 2
		filter := []string{"f/%d/x", "f/%d/+", "f/%d/#", "$share/g/f/%d/x"}[i%4]
		filter = fmt.Sprintf(filter, i)
		wait(t, "subscribe", cs[k].Subscribe(filter, 1, nil))
		if !n1.node.Forwarding() {
			tabled++
		}
		topic := fmt.Sprintf("f/%d/x", i)
		wait(t, "publish", pub.Publish(topic, 1, false, payload(i)))
		if m := subs[k].next(t); m.Topic() != topic || string(m.Payload()) != string(payload(i)) {
			t.Fatalf("round %d (%s): got %q %q", i, filter, m.Topic(), m.Payload())
		}
	}
	if tabled == 0 {
		t.Fatal("the publisher's node forwarded everything in every round: the table was never used")
	}
	// The table is in use: a topic nobody wants stays on n1.
	_, skip := counts(n1)
	wait(t, "publish", pub.Publish("nobody/wants/this", 1, false, []byte("-")))
	waitFor(t, "a skipped publish", func() bool { _, s := counts(n1); return s > skip || n1.node.Forwarding() })
	t.Logf("%d of 200 rounds decided by the table", tabled)
}

// A node that joins later fetches the others' sets: it forwards what they
// want and keeps the rest.
func TestLateNodeGetsTheTable(t *testing.T) {
	ns := startNATS(t)
	n1 := startNode(t, ns, "n1")
	r := subscribe(t, client(t, n1, "sub", true), "late/#", 1)
	shared := subscribe(t, client(t, n1, "member", true), "$share/g/job/+", 1)
	n2 := startNode(t, ns, "n2")
	synced(t, n2)
	pub := client(t, n2, "pub", true)
	fwd, skip := counts(n2)
	wait(t, "publish", pub.Publish("late/x", 1, false, []byte("a")))
	wait(t, "publish", pub.Publish("job/1", 1, false, []byte("b")))
	wait(t, "publish", pub.Publish("early/x", 1, false, []byte("c")))
	if m := r.next(t); string(m.Payload()) != "a" {
		t.Fatalf("got %q", m.Payload())
	}
	if m := shared.next(t); string(m.Payload()) != "b" {
		t.Fatalf("shared got %q", m.Payload())
	}
	if f, s := counts(n2); f-fwd != 2 || s-skip != 1 {
		t.Errorf("n2 forwarded %d, skipped %d; want 2 and 1", f-fwd, s-skip)
	}
}

// A node that restarts (same name, a new instance) replaces its old set:
// the others drop the old filters and learn the new ones.
func TestRestartedNodeReplacesItsSet(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	subscribe(t, client(t, n2, "old", true), "old/#", 1)
	synced(t, n1)
	pub := client(t, n1, "pub", true)
	fwd, _ := counts(n1)
	wait(t, "publish", pub.Publish("old/x", 1, false, []byte("-")))
	if f, _ := counts(n1); f != fwd+1 {
		t.Fatalf("forwarded %d, want 1", f-fwd)
	}
	n2.stop()
	n2b := startNode(t, ns, "n2")
	r := subscribe(t, client(t, n2b, "new", true), "new/#", 1)
	synced(t, n1)
	// No wait for the old run's filters to be let go of: the new run's
	// start waited until n1 had (its Rejoined mark), and those of a clean
	// session were removed before the old run's Bye anyway.
	fwd, skip := counts(n1)
	wait(t, "publish", pub.Publish("old/x", 1, false, []byte("-")))
	wait(t, "publish", pub.Publish("new/x", 1, false, []byte("n")))
	if m := r.next(t); string(m.Payload()) != "n" {
		t.Fatalf("got %q", m.Payload())
	}
	if f, s := counts(n1); f-fwd != 1 || s-skip != 1 {
		t.Errorf("after the restart n1 forwarded %d, skipped %d; want 1 and 1", f-fwd, s-skip)
	}
}

// An unsubscribe stops the forwarding, at the metric.
func TestRemovalStopsForwarding(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	c := client(t, n2, "sub", true)
	r := subscribe(t, c, "rm/x", 1)
	synced(t, n1)
	pub := client(t, n1, "pub", true)
	fwd, _ := counts(n1)
	wait(t, "publish", pub.Publish("rm/x", 1, false, []byte("1")))
	r.next(t)
	if f, _ := counts(n1); f != fwd+1 {
		t.Fatalf("forwarded %d, want 1", f-fwd)
	}
	wait(t, "unsubscribe", c.Unsubscribe("rm/x"))
	// An UNSUBACK does not wait for the other nodes: publish until n1 has
	// the removal.
	waitFor(t, "n1 to keep rm/x", func() bool {
		_, s := counts(n1)
		wait(t, "publish", pub.Publish("rm/x", 1, false, []byte("-")))
		_, s2 := counts(n1)
		return s2 > s
	})
	fwd, skip := counts(n1)
	for range 10 {
		wait(t, "publish", pub.Publish("rm/x", 1, false, []byte("-")))
	}
	if f, s := counts(n1); f != fwd || s-skip != 10 {
		t.Errorf("after the removal: forwarded %d, skipped %d; want 0 and 10", f-fwd, s-skip)
	}
}

// MQTT's rules hold in the table: '#' and '+' do not want $-topics, a
// filter naming one does; "a/#" wants "a"; a shared group is wanted even
// when its only members are on the publisher's node (the group is served
// through NATS).
func TestTableWildcardsDollarAndShared(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	sub := client(t, n2, "sub", true)
	all := subscribe(t, sub, "#", 0)
	dollar := subscribe(t, client(t, n2, "sub2", true), "$x/+", 0)
	own := subscribe(t, client(t, n1, "member", true), "$share/g/own/+", 0)
	synced(t, n1)
	pub := client(t, n1, "pub", true)
	cases := []struct {
		topic string
		want  bool
	}{{"$x/y", true}, {"$y/z", false}, {"a", true}, {"$SYSTEM/x", false}, {"own/1", true}}
	for _, c := range cases {
		fwd, skip := counts(n1)
		wait(t, "publish "+c.topic, pub.Publish(c.topic, 1, false, []byte(c.topic)))
		f, s := counts(n1)
		if (f-fwd == 1) != c.want || f-fwd+s-skip != 1 {
			t.Errorf("%s: forwarded %d, skipped %d; want forwarded %v", c.topic, f-fwd, s-skip, c.want)
		}
	}
	if m := dollar.next(t); m.Topic() != "$x/y" {
		t.Fatalf("$x/+ got %q", m.Topic())
	}
	for _, want := range []string{"a", "own/1"} {
		if m := all.next(t); m.Topic() != want {
			t.Fatalf("# got %q, want %q", m.Topic(), want)
		}
	}
	if m := own.next(t); m.Topic() != "own/1" {
		t.Fatalf("shared member on the publisher's node got %q", m.Topic())
	}
}

// A lost announcement is noticed from the sender's next heartbeat: the
// receiver fetches the sender's set again, and forwards everything until
// it has it.
func TestLostAnnouncementIsNoticed(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	// n1 must hold n2's set before the heartbeat below, or it has nothing
	// to notice: a beat for a peer not synced yet is ignored, as the fetch
	// under way will bring its set. synced alone is not enough, as n1 also
	// forwards nothing extra while it has not heard of n2 at all, which on
	// a loaded machine it may not have yet (n2's start waits for n1's
	// acknowledgement only up to the interest timeout).
	waitFor(t, "n1 to hold n2's set", func() bool {
		pt := n1.node.routes.peers
		pt.mu.Lock()
		defer pt.mu.Unlock()
		p := pt.peers["n2"]
		return p != nil && p.synced && p.epoch == n2.node.instance
	})
	synced(t, n1)
	// A heartbeat from n2 saying it made 5 announcements n1 never saw.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	data, _ := json.Marshal(announcement{Node: "n2", Epoch: n2.node.instance, Seq: 5, Beat: true})
	if err := nc.Publish("mqttd.interest", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to notice", func() bool { return n1.node.stats.InterestResyncs.Load() > 0 })
	synced(t, n1)
	// The refetched set is n2's real one: a new filter there still works.
	r := subscribe(t, client(t, n2, "sub", true), "lost/+", 1)
	wait(t, "publish", client(t, n1, "pub", true).Publish("lost/1", 1, false, []byte("x")))
	if m := r.next(t); string(m.Payload()) != "x" {
		t.Fatalf("got %q", m.Payload())
	}
}

// ghost is a node that holds a lease and answers requests for its set only
// while answering is set; it never acknowledges an announcement.
type ghost struct {
	answering atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

func startGhost(t *testing.T, url string) *ghost {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "mqttd-nodes")
	if err != nil {
		t.Fatal(err)
	}
	g := &ghost{stop: make(chan struct{})}
	g.answering.Store(true)
	lease, _ := json.Marshal(leaseValue{Instance: "ghost-1", Since: time.Now()})
	set, _ := json.Marshal(interestSet{Node: "ghost", Epoch: "ghost-1"})
	beat, _ := json.Marshal(announcement{Node: "ghost", Epoch: "ghost-1", Beat: true})
	if _, err := nc.Subscribe("mqttd.node.ghost.interest.set", func(m *nats.Msg) {
		if g.answering.Load() {
			m.Respond(set)
		}
	}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := kv.Put(ctx2, "ghost", lease); err != nil {
		t.Fatal(err)
	}
	every := func(d time.Duration, f func()) {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			tk := time.NewTicker(d)
			defer tk.Stop()
			for {
				select {
				case <-g.stop:
					return
				case <-tk.C:
					f()
				}
			}
		}()
	}
	every(200*time.Millisecond, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		kv.Put(ctx, "ghost", lease)
		cancel()
	})
	every(100*time.Millisecond, func() {
		if g.answering.Load() {
			nc.Publish("mqttd.interest", beat)
		}
	})
	t.Cleanup(func() {
		close(g.stop)
		g.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		kv.Delete(ctx, "ghost")
		cancel()
		nc.Close()
	})
	return g
}

// A live node that does not acknowledge a new subscription in time does
// not hold the SUBACK up beyond the timeout; the subscribing node counts it
// and forwards everything until that node answers again.
func TestUnresponsiveNodeMakesOthersForwardEverything(t *testing.T) {
	ns := startNATS(t)
	n1 := startNode(t, ns, "n1")
	g := startGhost(t, ns.ClientURL())
	synced(t, n1)
	pub := client(t, n1, "pub", true)
	fwd, skip := counts(n1)
	wait(t, "publish", pub.Publish("nobody/x", 1, false, []byte("-")))
	if f, s := counts(n1); f != fwd || s != skip+1 {
		t.Fatalf("with every node answering: forwarded %d, skipped %d; want 0 and 1", f-fwd, s-skip)
	}

	g.answering.Store(false)
	subscribe(t, client(t, n1, "sub", true), "q/#", 1) // waits out the timeout
	if n := n1.node.stats.InterestTimeouts.Load(); n != 1 {
		t.Fatalf("interest timeouts %d, want 1", n)
	}
	if !n1.node.Forwarding() {
		t.Fatal("n1 does not forward everything after the ghost failed to acknowledge")
	}
	fwd, skip = counts(n1)
	wait(t, "publish", pub.Publish("nobody/x", 1, false, []byte("-")))
	if f, s := counts(n1); f != fwd+1 || s != skip {
		t.Fatalf("while the ghost is silent: forwarded %d, skipped %d; want 1 and 0", f-fwd, s-skip)
	}
	// A second subscription does not wait for the silent node again.
	subscribe(t, client(t, n1, "sub2", true), "q2/#", 1)
	if n := n1.node.stats.InterestTimeouts.Load(); n != 1 {
		t.Fatalf("interest timeouts %d, want still 1", n)
	}

	g.answering.Store(true)
	synced(t, n1)
	fwd, skip = counts(n1)
	wait(t, "publish", pub.Publish("nobody/x", 1, false, []byte("-")))
	if f, s := counts(n1); f != fwd || s != skip+1 {
		t.Fatalf("after the ghost answered: forwarded %d, skipped %d; want 0 and 1", f-fwd, s-skip)
	}
}

// A set larger than one NATS message is fetched in pages: a node joining
// a peer with hundreds of filters, over a NATS whose max_payload holds a
// few dozen, gets them all.
func TestLargeSetFetchedInPages(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, MaxPayload: 4096,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	n1 := startNode(t, ns, "n1")
	def := newReceived()
	c := clientWith(t, n1, "many", true, def)
	const filters = 400
	for i := range filters {
		wait(t, "subscribe", c.Subscribe(fmt.Sprintf("page/%03d/some/longer/levels/+", i), 1, nil))
	}
	n2 := startNode(t, ns, "n2")
	synced(t, n2)
	pub := client(t, n2, "pub", true)
	fwd, skip := counts(n2)
	for i := range filters {
		wait(t, "publish", pub.Publish(fmt.Sprintf("page/%03d/some/longer/levels/x", i), 1, false, payload(i)))
	}
	wait(t, "publish", pub.Publish("page/none", 1, false, []byte("-")))
	if f, s := counts(n2); f-fwd != filters || s-skip != 1 {
		t.Fatalf("n2 forwarded %d, skipped %d; want %d and 1", f-fwd, s-skip, filters)
	}
	for range filters {
		def.next(t)
	}
}

// A node that is gone from NATS while its lease still runs (it crashed)
// holds up no SUBACK once a request for its set finds nobody answering;
// the others forward everything until its lease runs out.
func TestCrashedNodeHoldsUpNoSuback(t *testing.T) {
	ns := startNATS(t)
	// A lease long enough that it does not run out during the test: the
	// crashed node stays live by its lease throughout.
	testLease = time.Minute
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	testLease = 2 * time.Second
	synced(t, n1)
	// Gone from NATS without giving its lease back.
	n2.node.nc.Close()
	n2.node.ncShared.Close()
	waitFor(t, "n1 to find nobody answering for n2", func() bool {
		pt := n1.node.routes.peers
		pt.mu.Lock()
		defer pt.mu.Unlock()
		p := pt.peers["n2"]
		return p != nil && p.silent
	})
	r := subscribe(t, client(t, n1, "sub", true), "crash/+", 1)
	if n := n1.node.stats.InterestTimeouts.Load(); n != 0 {
		t.Errorf("%d interest timeouts: the SUBACK waited for the crashed node", n)
	}
	if !n1.node.Forwarding() {
		t.Error("n1 does not forward everything while the crashed node's lease runs")
	}
	wait(t, "publish", client(t, n1, "pub", true).Publish("crash/1", 1, false, []byte("x")))
	if m := r.next(t); string(m.Payload()) != "x" {
		t.Fatalf("got %q", m.Payload())
	}
}
