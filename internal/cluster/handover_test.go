package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// cutStore is a node's view of the shared store; cut makes every later
// write fail, as a killed process writes nothing more.
type cutStore struct {
	store.Store
	cut     atomic.Bool
	commits atomic.Int64 // CommitAsync calls
}

func (c *cutStore) Commit(ctx context.Context, b *store.Batch) error {
	if c.cut.Load() {
		return store.ErrClosed
	}
	return c.Store.Commit(ctx, b)
}

func (c *cutStore) CommitAsync(b *store.Batch, done func(error)) {
	c.commits.Add(1)
	if c.cut.Load() {
		done(store.ErrClosed)
		return
	}
	c.Store.CommitAsync(b, done)
}

// sharedNode is a node of a cluster whose nodes share one store.
type sharedNode struct {
	*testNode
	st *cutStore
}

// startShared starts a node on NATS ns with st as its store, shared with
// the other nodes: a one-second lease, and the handover timeout given (0:
// the default).
func startShared(t testing.TB, ns *server.Server, name string, st store.Store, handover time.Duration) *sharedNode {
	t.Helper()
	return startStored(t, ns, name, st, Options{NodeLease: time.Second, HandoverTimeout: handover}, true, mqtt.Limits{})
}

// startStored starts a node on NATS ns with st as its store (with shared,
// every node's), the cluster options o (URLs, name and logger filled in)
// and the broker limits given.
func startStored(t testing.TB, ns *server.Server, name string, st store.Store, o Options, shared bool, limits mqtt.Limits) *sharedNode {
	t.Helper()
	sn := &sharedNode{testNode: &testNode{name: name}, st: &cutStore{Store: st}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.URLs, o.Name, o.Logger = []string{ns.ClientURL()}, name, testLogger()
	n, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mqtt.New(mqtt.Options{Name: name, Logger: testLogger(), Store: sn.st, Cluster: n, SharedStore: shared,
		Limits: limits, Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	sn.node, sn.broker, sn.addr = n, b, b.Addr("t").String()
	t.Cleanup(sn.stop)
	return sn
}

// kill stops the node as SIGKILL would look to the others: it writes
// nothing more to the store, its NATS connections drop without giving its
// name back, and its clients lose their connections.
func (sn *sharedNode) kill() {
	sn.st.cut.Store(true)
	n := sn.node
	n.cancel()
	n.wg.Wait()
	n.nc.Close()
	n.ncShared.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sn.broker.Close(ctx)
}

// connect311 connects a 3.1.1 client whose messages (of subscriptions
// made in earlier connections too) go to r, and reports session present.
func connect311(t testing.TB, tn *testNode, id string, r *received) (paho.Client, bool) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + tn.addr).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(true)
	if r != nil {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { r.ch <- m })
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, tn.name, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

// expectSeq reads n messages and checks they are payload(from)...
// payload(from+n-1), in that order.
func expectSeq(t testing.TB, r *received, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if m := r.next(t); string(m.Payload()) != string(payload(i)) {
			t.Fatalf("got %q, want %q", m.Payload(), payload(i))
		}
	}
}

// An offline persistent session moves to the node its client reconnects
// to: session present, its subscription, and every message queued for it
// on the first node, in order, none twice; the first node forgets it.
func TestSessionFollowsClient(t *testing.T) {
	t.Run("memstore", func(t *testing.T) { testSessionFollowsClient(t, memstore.New()) })
	t.Run("pebblestore", func(t *testing.T) {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // after the nodes' cleanups, registered later
		testSessionFollowsClient(t, st)
	})
}

func testSessionFollowsClient(t *testing.T, st store.Store) {
	ns := startNATS(t)
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)

	c, present := connect311(t, a.testNode, "mover", nil)
	if present {
		t.Fatal("session present on a first connection")
	}
	subscribe(t, c, "q/#", 1)
	c.Disconnect(100)
	waitFor(t, "the session offline on a", func() bool { return a.broker.HasSession("mover") })

	pub := client(t, b.testNode, "pub", true)
	for i := range 50 {
		wait(t, "publish", pub.Publish("q/x", 1, false, payload(i)))
	}
	r := newReceived()
	_, present = connect311(t, b.testNode, "mover", r)
	if !present {
		t.Fatal("session not present after moving to b")
	}
	expectSeq(t, r, 0, 50)
	if a.broker.HasSession("mover") {
		t.Error("a still holds the session it handed over")
	}
	if got := b.node.Stats().HandedOver.Load(); got != 1 {
		t.Errorf("handovers counted on b: %d, want 1", got)
	}
	// The subscription is in effect on b before the CONNACK, for messages
	// from either node (two publishers: in either order); nothing came
	// twice before them.
	wait(t, "publish", client(t, a.testNode, "pub2", true).Publish("q/y", 1, false, payload(50)))
	wait(t, "publish", pub.Publish("q/z", 1, false, payload(51)))
	m1, m2 := string(r.next(t).Payload()), string(r.next(t).Payload())
	if m1 > m2 {
		m1, m2 = m2, m1
	}
	if m1 != string(payload(50)) || m2 != string(payload(51)) {
		t.Fatalf("after the move got %q and %q, want m50 and m51", m1, m2)
	}
}

// A connected client that connects again on another node: the old
// connection is closed with 0x8E, the new one gets session present, and
// every message published by a third node throughout reaches the client
// on one connection or the other (QoS 1: some twice at the switch).
func TestTakeoverMovesSession(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b, p := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0), startShared(t, ns, "p", st, 0)

	got := make(chan string, 100000)    // both connections
	gotNew := make(chan string, 100000) // the one on b
	old := v5Persistent(t, a.testNode, "mover", got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := old.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	pub := client(t, p.testNode, "pub", true)
	published := make(chan int)
	stop := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tok := pub.Publish("q/x", 1, false, payload(i))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				return
			}
			published <- i
		}
	}()
	for i := range 20 { // the stream is flowing to a
		if <-published != i {
			t.Fatal("publisher out of step")
		}
	}
	next := v5Persistent(t, b.testNode, "mover", nil)
	next.c.AddOnPublishReceived(func(pr pahov5.PublishReceived) (bool, error) {
		gotNew <- string(pr.Packet.Payload) // first: all of got is in gotNew
		got <- string(pr.Packet.Payload)
		return true, nil
	})
	if !next.ack.SessionPresent {
		t.Fatal("session not present after the takeover on b")
	}
	select {
	case d := <-old.disc:
		if d.ReasonCode != 0x8E {
			t.Errorf("old connection: DISCONNECT %#x, want 0x8E", d.ReasonCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("old connection not told it was taken over")
	}
	last := 0
	for range 20 { // and goes on after the switch
		last = <-published
	}
	close(stop)
	for i := range published {
		last = i
	}
	seen := map[string]int{}
	for i := 0; i <= last; i++ {
		for seen[string(payload(i))] == 0 {
			select {
			case s := <-got:
				seen[s]++
			case <-time.After(10 * time.Second):
				t.Fatalf("message %d of %d never arrived", i, last)
			}
		}
	}
	// Resent on b after the old connection had it unacknowledged is
	// QoS 1 at work; queued twice on b would be the handover's fault.
	onNew := map[string]bool{}
	for len(gotNew) > 0 {
		p := <-gotNew
		if onNew[p] {
			t.Errorf("%s delivered twice on b", p)
		}
		onNew[p] = true
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d messages, %d received on both connections, %d second copies removed on b", last+1, dups,
		b.broker.HandoverDuplicates())
}

type v5conn struct {
	c    *pahov5.Client
	ack  *pahov5.Connack
	disc chan *pahov5.Disconnect
}

// v5Persistent connects an MQTT 5 client with a session that never
// expires; messages go to got when it is not nil.
func v5Persistent(t testing.TB, tn *testNode, id string, got chan string) *v5conn {
	t.Helper()
	vc, err := v5Connect(tn, id, &pahov5.Connect{ClientID: id, KeepAlive: 30, CleanStart: false,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(0xFFFFFFFF))}}, got)
	if err != nil {
		t.Fatalf("v5 connect %s to %s: %v", id, tn.name, err)
	}
	t.Cleanup(func() { vc.c.Disconnect(&pahov5.Disconnect{}) })
	return vc
}

func v5Connect(tn *testNode, id string, cp *pahov5.Connect, got chan string) (*v5conn, error) {
	conn, err := net.DialTimeout("tcp", tn.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	vc := &v5conn{disc: make(chan *pahov5.Disconnect, 1)}
	cfg := pahov5.ClientConfig{Conn: conn, PacketTimeout: 10 * time.Second,
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case vc.disc <- d:
			default:
			}
		}}
	if got != nil {
		cfg.OnPublishReceived = []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			got <- string(pr.Packet.Payload)
			return true, nil
		}}
	}
	vc.c = pahov5.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	vc.ack, err = vc.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return vc, err
	}
	return vc, nil
}

func ptr[T any](v T) *T { return &v }

// A node that dies does not take its sessions with it: once its lease has
// run out, one survivor adopts each persistent session (the will of the
// dead connection goes out once, cluster-wide), messages published
// meanwhile are queued, and the client reconnecting to any survivor gets
// them with its session.
func TestDeadNodeSessionsAdopted(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b, c := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0), startShared(t, ns, "c", st, 0)

	wills := []*received{subscribe(t, client(t, b.testNode, "wb", true), "will/#", 1),
		subscribe(t, client(t, c.testNode, "wc", true), "will/#", 1)}
	vc, err := v5Connect(a.testNode, "orphan", &pahov5.Connect{ClientID: "orphan", KeepAlive: 30,
		Properties:  &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))},
		WillMessage: &pahov5.WillMessage{Topic: "will/orphan", QoS: 1, Payload: []byte("gone")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := vc.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	// The stored record has the subscription once the store saw a's
	// write (the SUBACK does not wait for it).
	waitFor(t, "the subscription stored", func() bool {
		r, _ := st.Session("orphan")
		return r != nil && len(r.Subs) == 1
	})

	a.kill()
	adopter := func() *sharedNode {
		for _, n := range []*sharedNode{b, c} {
			if n.broker.HasSession("orphan") {
				return n
			}
		}
		return nil
	}
	adopted := func() int64 { return b.node.Stats().Adopted.Load() + c.node.Stats().Adopted.Load() }
	waitFor(t, "a survivor to adopt the session", func() bool { return adopter() != nil && adopted() > 0 })
	for _, w := range wills {
		if m := w.next(t); string(m.Payload()) != "gone" {
			t.Fatalf("will: %q", m.Payload())
		}
	}

	// A QoS 1 publish matching a's sessions is refused until every
	// survivor has finished adopting them (Forward): wait for that here.
	waitFor(t, "b to know every survivor adopted a's sessions", func() bool {
		b.node.routes.peers.mu.Lock()
		defer b.node.routes.peers.mu.Unlock()
		_, known := b.node.routes.peers.peers["a"]
		return !known && len(b.node.routes.peers.orphans) == 0
	})
	pub := client(t, b.testNode, "pub", true)
	for i := range 20 {
		wait(t, "publish", pub.Publish("q/x", 1, false, payload(i)))
	}
	// A marker published after the messages shows the will came once.
	wait(t, "publish", pub.Publish("will/marker", 1, false, []byte("marker")))
	for _, w := range wills {
		if m := w.next(t); string(m.Payload()) != "marker" {
			t.Fatalf("after the will: %q, want the marker", m.Payload())
		}
	}
	if n := adopted(); n != 1 {
		t.Errorf("adopted %d times, want once", n)
	}
	// Reconnect to the survivor that did not adopt it: a handover.
	other := b
	if adopter() == b {
		other = c
	}
	got := make(chan string, 100)
	back := v5Persistent(t, other.testNode, "orphan", got)
	if !back.ack.SessionPresent {
		t.Fatal("session not present on a survivor")
	}
	for i := range 20 {
		select {
		case s := <-got:
			if s != string(payload(i)) {
				t.Fatalf("got %q, want %q", s, payload(i))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}
}

// A node that holds a session but does not answer the handover in time
// keeps it while its lease is held: the client is refused (MQTT 5: 0x88,
// 3.1.1: 0x03). Once its lease has gone the session is taken over.
func TestHandoverTimeout(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 300*time.Millisecond)

	v5Persistent(t, a.testNode, "stuck", nil).c.Subscribe(context.Background(),
		&pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}})
	waitFor(t, "the subscription stored", func() bool {
		r, _ := st.Session("stuck")
		return r != nil && len(r.Subs) == 1
	})
	// a goes silent: its handover subject has a listener that never answers.
	a.node.owners.hsub.Unsubscribe()
	if _, err := a.node.nc.Subscribe(a.node.subject("node", "a", "handover"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	a.node.nc.Flush()

	vc, err := v5Connect(b.testNode, "stuck", &pahov5.Connect{ClientID: "stuck", KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(0xFFFFFFFF))}}, nil)
	if err == nil || vc.ack == nil || vc.ack.ReasonCode != 0x88 {
		t.Fatalf("connect to b while a is silent: %v, %+v; want refused with 0x88", err, vc.ack)
	}
	o := paho.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID("stuck").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	tok := paho.NewClient(o).Connect()
	tok.WaitTimeout(15 * time.Second)
	if ct := tok.(*paho.ConnectToken); ct.ReturnCode() != 0x03 {
		t.Fatalf("3.1.1 connect to b while a is silent: return code %#x (%v), want 0x03", ct.ReturnCode(), tok.Error())
	}
	if n := b.node.Stats().HandoverRefused.Load(); n != 2 {
		t.Errorf("refusals counted: %d, want 2", n)
	}
	e, err := b.node.owners.kv.Get(context.Background(), idKey("stuck"))
	if err != nil {
		t.Fatal(err)
	}
	var cur ownerValue
	json.Unmarshal(e.Value(), &cur)
	if cur.Node != "a" {
		t.Errorf("owner after the refusals: %q, want a", cur.Node)
	}
	if !a.broker.HasSession("stuck") || b.broker.HasSession("stuck") {
		t.Error("the session moved although a never let it go")
	}

	a.kill()
	var back *v5conn
	waitFor(t, "the session taken over from a dead node", func() bool {
		vc, err := v5Connect(b.testNode, "stuck", &pahov5.Connect{ClientID: "stuck", KeepAlive: 30,
			Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(0xFFFFFFFF))}}, nil)
		if err != nil {
			if vc == nil || vc.ack == nil || vc.ack.ReasonCode != 0x88 {
				t.Fatalf("connect after a's death: %v", err)
			}
			return false // a's lease still held
		}
		back = vc
		return true
	})
	defer back.c.Disconnect(&pahov5.Disconnect{})
	if !back.ack.SessionPresent {
		t.Fatal("session not present after a's lease ran out")
	}
}

// Messages sent to the client on the first node and not acknowledged
// there are in flight in the session: the node it moves to resends them
// (DUP set) before anything queued after them.
func TestInflightFollowsClient(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)

	conn, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	unacked := make(chan string, 100)
	first := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: 10 * time.Second,
		EnableManualAcknowledgment: true, // and never acknowledges
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			unacked <- string(pr.Packet.Payload)
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := first.Connect(ctx, &pahov5.Connect{ClientID: "mover", KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))}}); err != nil {
		t.Fatal(err)
	}
	defer first.Disconnect(&pahov5.Disconnect{})
	if _, err := first.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := client(t, a.testNode, "pub", true)
	for i := range 3 {
		wait(t, "publish", pub.Publish("q/x", 1, false, payload(i)))
	}
	for i := range 3 {
		if s := <-unacked; s != string(payload(i)) {
			t.Fatalf("first connection got %q, want %q", s, payload(i))
		}
	}
	// The in-flight records reach the store behind the sends.
	waitFor(t, "in-flight ids stored", func() bool {
		ids, _ := st.Inflight("mover")
		return len(ids) == 3
	})

	type rcv struct {
		payload string
		dup     bool
	}
	got := make(chan rcv, 100)
	conn2, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	second := pahov5.NewClient(pahov5.ClientConfig{Conn: conn2, PacketTimeout: 10 * time.Second,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			got <- rcv{string(pr.Packet.Payload), pr.Packet.Duplicate()}
			return true, nil
		}}})
	ack, err := second.Connect(ctx, &pahov5.Connect{ClientID: "mover", KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))}})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Disconnect(&pahov5.Disconnect{})
	if !ack.SessionPresent {
		t.Fatal("session not present on b")
	}
	wait(t, "publish", pub.Publish("q/x", 1, false, payload(3)))
	for i := range 4 {
		select {
		case r := <-got:
			if r.payload != string(payload(i)) || r.dup != (i < 3) {
				t.Fatalf("b sent %q dup=%v, want %q dup=%v", r.payload, r.dup, payload(i), i < 3)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered on b", i)
		}
	}
}

// A node restarted under its name loads the sessions the owner entries
// still give it, without their clients: their subscriptions queue again
// before the clients come back.
func TestRestartedNodeLoadsItsSessions(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a := startShared(t, ns, "a", st, 0)
	c, _ := connect311(t, a.testNode, "sleeper", nil)
	subscribe(t, c, "q/#", 1)
	c.Disconnect(100)
	waitFor(t, "the session stored offline", func() bool {
		r, _ := st.Session("sleeper")
		return r != nil && !r.OfflineSince.IsZero()
	})
	a.stop()

	a2 := startShared(t, ns, "a", st, 0)
	waitFor(t, "the restarted node to load its session", func() bool { return a2.broker.HasSession("sleeper") })
	pub := client(t, a2.testNode, "pub", true)
	for i := range 10 {
		wait(t, "publish", pub.Publish("q/x", 1, false, payload(i)))
	}
	r := newReceived()
	if _, present := connect311(t, a2.testNode, "sleeper", r); !present {
		t.Fatal("session not present after the restart")
	}
	expectSeq(t, r, 0, 10)
}

// Adopted wills keep their delay: one whose client does not come back is
// published once, by the adopter, when its delay has run; a session whose
// client reconnects within its delay resumes (the resume cancels the
// will, as on one node).
func TestAdoptedWillDelay(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	wills := subscribe(t, client(t, b.testNode, "w", true), "will/#", 1)
	withWill := func(id string, delay uint32) {
		_, err := v5Connect(a.testNode, id, &pahov5.Connect{ClientID: id, KeepAlive: 30,
			Properties:     &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))},
			WillMessage:    &pahov5.WillMessage{Topic: "will/" + id, QoS: 1, Payload: []byte(id)},
			WillProperties: &pahov5.WillProperties{WillDelayInterval: ptr(delay)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the session stored", func() bool { r, _ := st.Session(id); return r != nil && r.Will != nil })
	}
	withWill("late", 1)
	withWill("back", 3600)

	a.kill()
	waitFor(t, "b to adopt both", func() bool { return b.broker.HasSession("late") && b.broker.HasSession("back") })
	back := v5Persistent(t, b.testNode, "back", nil)
	if !back.ack.SessionPresent {
		t.Fatal("session not present")
	}
	if m := wills.next(t); string(m.Payload()) != "late" {
		t.Fatalf("first will: %q, want late's", m.Payload())
	}
	// A marker after it: late's will came once.
	wait(t, "publish", client(t, b.testNode, "pub", true).Publish("will/marker", 1, false, []byte("marker")))
	if m := wills.next(t); string(m.Payload()) != "marker" {
		t.Fatalf("after late's will: %q, want the marker", m.Payload())
	}
}

// TestMeasureHandover measures, in one run, how long a persistent client's
// CONNECT takes to be answered when it resumes on the node that has its
// session, and when its session moves from the other node (offline there,
// one subscription, ten messages queued each time). It prints the median
// of each and their ratio. Set MQTTD_CLUSTER_MEASURE=1 to run it.
func TestMeasureHandover(t *testing.T) {
	if os.Getenv("MQTTD_CLUSTER_MEASURE") == "" {
		t.Skip("set MQTTD_CLUSTER_MEASURE=1 to measure")
	}
	const rounds, queued = 200, 10
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	po := paho.NewClientOptions().AddBroker("tcp://" + a.addr).SetClientID("pub").SetCleanSession(true).
		SetProtocolVersion(4).SetAutoReconnect(false).SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { t.Logf("pub lost: %v", err) })
	pub := paho.NewClient(po)
	wait(t, "connect pub", pub.Connect())
	offline := func(n *sharedNode) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if v, ok := n.broker.Client("m"); ok && !v.Connected {
				return
			}
			if time.Now().After(deadline) {
				va, oka := a.broker.Client("m")
				vb, okb := b.broker.Client("m")
				e, _ := a.node.owners.kv.Get(context.Background(), idKey("m"))
				t.Fatalf("session not offline on %s: a %v %+v; b %v %+v; owner %s", n.name, oka, va, okb, vb, e.Value())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	c, _ := connect311(t, a.testNode, "m", nil)
	subscribe(t, c, "q/#", 1)
	c.Disconnect(50)
	offline(a)
	r := newReceived()
	at := a
	times := map[string][]time.Duration{}
	for i := range 2 * rounds {
		kind, next := "local", at
		if i%2 == 1 {
			kind = "moved"
			if at == a {
				next = b
			} else {
				next = a
			}
		}
		want := map[string]bool{}
		for j := range queued {
			p := fmt.Sprintf("r%d-%d", i, j)
			want[p] = true
			wait(t, "publish", pub.Publish("q/x", 1, false, []byte(p)))
		}
		start := time.Now()
		c, present := connect311(t, next.testNode, "m", r)
		times[kind] = append(times[kind], time.Since(start))
		if !present {
			t.Fatalf("round %d: session not present", i)
		}
		for len(want) > 0 { // earlier rounds' unacknowledged ones may come again first
			select {
			case m := <-r.ch:
				delete(want, string(m.Payload()))
			case <-time.After(10 * time.Second):
				qs, _ := st.Scan("m", 0, 100)
				var ps []string
				for _, q := range qs {
					ps = append(ps, fmt.Sprintf("%d:%s", q.Seq, q.Msg.Payload))
				}
				inf, _ := st.Inflight("m")
				va, _ := a.broker.Client("m")
				vb, _ := b.broker.Client("m")
				t.Fatalf("round %d %s %s->%s: missing %v; store %v inflight %v; a %+v; b %+v", i, kind, at.name, next.name, want, ps, inf, va, vb)
			}
		}
		c.Disconnect(50)
		offline(next)
		at = next
	}
	med := func(k string) time.Duration { v := slices.Clone(times[k]); slices.Sort(v); return v[len(v)/2] }
	l, m := med("local"), med("moved")
	t.Logf("median CONNECT→CONNACK: resumed on its node %v, moved from the other node %v; moved / local = %.2f", l, m, float64(m)/float64(l))
}

// A clean start on another node ends the session where it was: its stored
// queue goes with it, and the new connection starts without it.
func TestCleanStartElsewhereDiscards(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	c, _ := connect311(t, a.testNode, "gone", nil)
	subscribe(t, c, "q/#", 1)
	c.Disconnect(100)
	pub := client(t, a.testNode, "pub", true)
	for i := range 5 {
		wait(t, "publish", pub.Publish("q/x", 1, false, payload(i)))
	}
	waitFor(t, "the queue stored", func() bool { n, _ := st.QueueLen("gone"); return n == 5 })

	fresh := client(t, b.testNode, "gone", true) // clean session
	if a.broker.HasSession("gone") {
		t.Error("a kept the session a clean start ended")
	}
	if r, _ := st.Session("gone"); r != nil {
		t.Errorf("the ended session is still stored: %+v", r)
	}
	if n, _ := st.QueueLen("gone"); n != 0 {
		t.Errorf("%d messages still queued for the ended session", n)
	}
	if !fresh.IsConnected() {
		t.Error("the clean connection did not stay")
	}
}

// A read of an owner entry that fails in an adoption pass (a timeout under
// load) does not end the pass as if the gone node's sessions were handled:
// the survivor scans again and adopts the session.
func TestAdoptionRetriesAFailedRead(t *testing.T) {
	var failed atomic.Bool
	adoptGetFault = func(node, key string, live map[string]bool) error {
		if node == "b" && !live["a"] && failed.CompareAndSwap(false, true) {
			return context.DeadlineExceeded
		}
		return nil
	}
	t.Cleanup(func() { adoptGetFault = nil })
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	persistentSubscriber(t, a, st, "orphan")
	// The first read in a pass that finds a gone fails.
	a.kill()
	waitFor(t, "b to adopt the session after a failed read", func() bool {
		return failed.Load() && b.broker.HasSession("orphan") && b.node.Stats().Adopted.Load() == 1
	})
}

// A node that is killed, restarted and killed again has its sessions
// adopted the second time too: the survivor notices every node it saw go,
// not only the ones live at its last complete scan.
func TestNodeKilledTwiceSessionsAdopted(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	a.kill()
	// b scans once it sees a gone, and then reports it has adopted what a
	// had: wait for that before a comes back.
	waitFor(t, "b to finish with a's first run", func() bool {
		b.node.routes.peers.mu.Lock()
		defer b.node.routes.peers.mu.Unlock()
		_, known := b.node.routes.peers.peers["a"]
		return !known && len(b.node.routes.peers.orphans) == 0
	})
	a = startShared(t, ns, "a", st, 0)
	persistentSubscriber(t, a, st, "twice")
	a.kill()
	waitFor(t, "b to adopt the session of a's second run", func() bool {
		return b.broker.HasSession("twice")
	})
}

// persistentSubscriber connects id to n as a 5.0 client with a session
// that outlives it, subscribed to q/# at QoS 1, and waits until st has the
// subscription.
func persistentSubscriber(t *testing.T, n *sharedNode, st store.Store, id string) {
	t.Helper()
	vc, err := v5Connect(n.testNode, id, &pahov5.Connect{ClientID: id, KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := vc.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "q/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription stored", func() bool {
		r, _ := st.Session(id)
		return r != nil && len(r.Subs) == 1
	})
}
