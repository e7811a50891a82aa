package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// startRun starts a run of node name with st as its store: its own (a
// restart finds its sessions there) or, with shared, every node's; the
// node lease given, and a one-second forward timeout, so a publish waiting
// for a node that died is refused soon and the next one goes out.
func startRun(t testing.TB, ns *server.Server, name string, st store.Store, shared bool, lease time.Duration) *sharedNode {
	t.Helper()
	// Room in the queues for every message: a refused publish is still
	// sent to the nodes that subscribe (they may keep it), and a queue
	// that overflowed would drop acknowledged ones.
	return startStored(t, ns, name, st, Options{NodeLease: lease, ForwardTimeout: time.Second}, shared,
		mqtt.Limits{MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30})
}

// publish1 publishes m at QoS 1 and reports whether it was acknowledged
// (0x00) or refused (0x80); anything else fails the test.
func publish1(t testing.TB, pub *pahov5.Client, topic, m string) bool {
	t.Helper()
	ok, err := tryPublish1(pub, topic, m)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// tryPublish1 is publish1 returning what fails as an error.
func tryPublish1(pub *pahov5.Client, topic, m string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := pub.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: 1, Payload: []byte(m)})
	switch {
	case resp == nil:
		return false, fmt.Errorf("publish %s: no PUBACK: %v", m, err)
	case resp.ReasonCode == 0x80:
		return false, nil
	case resp.ReasonCode != 0:
		return false, fmt.Errorf("publish %s: PUBACK 0x%02x", m, resp.ReasonCode)
	}
	return true, nil
}

// orphaned lists the filters tn holds as a gone run's.
func orphaned(tn *testNode) []string {
	p := tn.node.routes.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	var fs []string
	for _, o := range p.orphans {
		fs = append(fs, o.filters...)
	}
	slices.Sort(fs)
	return fs
}

// A node restarted cleanly restores its persistent sessions (from its own
// store) or adopts them (from the shared one, unless another node did
// meanwhile) before it is ready, and says so: the other nodes let go of
// the old run's filters at once, so a QoS 1 publish on another node to
// such a session's topic, straight after the restart, is acknowledged and
// delivered. While the node is down the same publish is refused.
func TestRestartedNodePersistentSubscriberAccepted(t *testing.T) {
	t.Run("own store", func(t *testing.T) { testRestartedAccepted(t, false) })
	t.Run("shared store", func(t *testing.T) { testRestartedAccepted(t, true) })
}

func testRestartedAccepted(t *testing.T, shared bool) {
	ns := startNATS(t)
	st := memstore.New()
	n1, n2 := startRun(t, ns, "n1", st, shared, time.Second), startRun(t, ns, "n2", st, shared, time.Second)
	c := client(t, n2.testNode, "p", false)
	subscribe(t, c, "r/#", 1)
	synced(t, n1.testNode)
	pub, _ := v5(t, n1.testNode, "pub")
	if !publish1(t, pub, "r/x", "before") {
		t.Fatal("refused while n2 runs")
	}
	c.Disconnect(100)
	n2.stop()
	// Held as the stopped run's (or, until n1 hears of the stop, waiting
	// for n2's confirmation, which never comes): refused either way.
	if publish1(t, pub, "r/x", "between") {
		t.Fatal("acknowledged while the node holding its subscriber is down")
	}
	n2 = startRun(t, ns, "n2", st, shared, time.Second)
	if !publish1(t, pub, "r/x", "after") {
		t.Fatalf("refused right after the restart; n1 holds %q as a gone run's", orphaned(n1.testNode))
	}
	got := newReceived()
	clientWith(t, n2.testNode, "p", false, got)
	for {
		m := got.next(t)
		if string(m.Payload()) == "after" {
			break
		}
		if p := string(m.Payload()); p != "before" && p != "between" {
			t.Fatalf("got %q", p)
		}
	}
	if fs := orphaned(n1.testNode); len(fs) != 0 {
		t.Errorf("n1 still holds %q as a gone run's", fs)
	}
}

// A node that leaves cleanly says so after its last removals: the others
// let go at once of what its clean sessions had, and hold only its
// persistent sessions' filters (refusing QoS 1 publishes to them) until
// its sessions are held again.
func TestCleanLeaveHoldsOnlyPersistentFilters(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	n1, n2 := startNode(t, ns, "n1"), startRun(t, ns, "n2", st, false, time.Second)
	subscribe(t, client(t, n2.testNode, "clean", true), "c/#", 1)
	subscribe(t, client(t, n2.testNode, "kept", false), "k/#", 1)
	synced(t, n1)
	n2.stop()
	waitFor(t, "n1 to take n2's leave", func() bool {
		p := n1.node.routes.peers
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.peers["n2"] == nil
	})
	// The lease's removal may be seen before the last announcements;
	// those apply to the run's orphans in order.
	waitFor(t, "n1 to hold k/# only", func() bool { return slices.Equal(orphaned(n1), []string{"k/#"}) })
	pub, _ := v5(t, n1, "pub")
	if !publish1(t, pub, "c/x", "clean") {
		t.Error("refused a publish only a clean session of the stopped node had subscribed to")
	}
	if publish1(t, pub, "k/x", "kept") {
		t.Error("acknowledged a publish for a persistent session nobody holds")
	}
}

// A node killed and restarted at once (within a lease, so the others never
// count it gone) loses nothing acknowledged: every QoS 1 publish from
// another node, before, between and after, is refused or reaches the
// persistent session; and once the new run has the session, publishes are
// acknowledged again well before two leases.
func TestKilledNodeRestartedLosesNothing(t *testing.T) {
	t.Run("shared store", func(t *testing.T) { testKilledRestarted(t, true) })
	t.Run("own store", func(t *testing.T) { testKilledRestarted(t, false) })
}

func testKilledRestarted(t *testing.T, shared bool) {
	ns := startNATS(t)
	st := memstore.New()
	// A lease long enough that the old run's filters, held for two leases
	// at most, cannot be what lets publishes through soon after the
	// restart.
	const lease = 3 * time.Second
	a, b := startRun(t, ns, "a", st, shared, lease), startRun(t, ns, "b", st, shared, lease)
	got := make(chan string, 10000)
	held := v5Persistent(t, a.testNode, "held", got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := held.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription stored", func() bool {
		r, _ := st.Session("held")
		return r != nil && len(r.Subs) == 1
	})
	synced(t, b.testNode)

	// Four publishers, so that some publish goes out at every moment.
	var mu sync.Mutex
	var acked []string
	var failed error
	refused := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 4 {
		pub, _ := v5(t, b.testNode, fmt.Sprintf("pub%d", p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishUntil(stop, pub, p, &mu, &acked, &refused, &failed)
		}()
	}
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if failed != nil {
			t.Fatal(failed)
		}
		return len(acked), refused
	}
	waitFor(t, "some publishes acknowledged", func() bool { n, _ := count(); return n >= 20 })
	a.kill()
	waitFor(t, "some publishes refused", func() bool { _, r := count(); return r > 0 })
	a = startRun(t, ns, "a", st, shared, lease)
	restarted := time.Now()
	holder := func() *sharedNode {
		for _, n := range []*sharedNode{a, b} {
			if n.broker.HasSession("held") {
				return n
			}
		}
		return nil
	}
	waitFor(t, "the session held again", func() bool { return holder() != nil })
	// Acknowledged again once the new run said it holds the old run's
	// sessions: with its own store before it was ready, with the shared
	// one after its first adoption pass (a third of a lease after its
	// start). The old run's filters, held since the new run's lease was
	// seen, would be given up only two leases after that.
	n0, _ := count()
	waitFor(t, "publishes acknowledged after the restart", func() bool { n, _ := count(); return n >= n0+20 })
	resumed := time.Since(restarted)
	if resumed >= lease {
		t.Errorf("publishes acknowledged again %s after the restart; want less than a lease", resumed)
	}
	close(stop)
	wg.Wait()
	count()
	v5Persistent(t, holder().testNode, "held", got)
	allArrive(t, got, acked, refused)
	t.Logf("%d acknowledged and delivered, %d refused; acknowledged again %s after the restart", len(acked), refused, resumed)
}

// publishUntil publishes QoS 1 messages "p<publisher>-<n>" to q/x until
// stop is closed, adding each to acked or counting it in refused; an error
// ends it, in failed.
func publishUntil(stop chan struct{}, pub *pahov5.Client, publisher int, mu *sync.Mutex, acked *[]string, refused *int, failed *error) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		m := fmt.Sprintf("p%d-%05d", publisher, i)
		ok, err := tryPublish1(pub, "q/x", m)
		mu.Lock()
		switch {
		case err != nil:
			*failed = err
		case ok:
			*acked = append(*acked, m)
		default:
			*refused++
		}
		mu.Unlock()
		if err != nil {
			return
		}
	}
}
