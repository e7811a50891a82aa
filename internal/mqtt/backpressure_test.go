package mqtt

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// flowPublisher is a raw MQTT 3.1.1 publisher that keeps up to window
// QoS 1 or 2 messages outstanding, as a device with a deep in-flight window
// does. It records which of its messages the broker acknowledged (PUBACK,
// or PUBREC for QoS 2: from then on the broker owns the message).
type flowPublisher struct {
	conn  net.Conn
	name  string
	qos   byte
	acked map[uint16]bool // packet ids acknowledged, reset per round of 65535
	n     int             // messages acknowledged
}

// dialFlow connects a raw 3.1.1 client for goroutine use: errors are
// returned, not reported with t.Fatal.
func dialFlow(addr, id string, v packets.Version) (net.Conn, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(conn)
	b, _ := (&packets.Connect{ClientID: id, CleanStart: true, KeepAlive: 120, ProtocolVersion: v}).Append(nil, v)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(b); err != nil {
		conn.Close()
		return nil, nil, err
	}
	p, err := packets.ReadPacket(r, v, 1<<20)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if ack, ok := p.(*packets.Connack); !ok || ack.ReasonCode != 0 {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: CONNACK %+v", id, p)
	}
	conn.SetDeadline(time.Time{})
	return conn, r, nil
}

// publishWindowed sends count messages on topic with at most window
// outstanding and returns how many the broker acknowledged before deadline.
// Payloads are "name/seq", so the subscriber can tell which arrived.
func publishWindowed(addr, name, topic string, qos byte, count, window int, deadline time.Time) (int, error) {
	conn, r, err := dialFlow(addr, name, packets.V311)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	slots := make(chan struct{}, window)
	var mu sync.Mutex
	acked := 0
	readErr := make(chan error, 1)
	go func() {
		for {
			p, err := packets.ReadPacket(r, packets.V311, 1<<20)
			if err != nil {
				readErr <- err
				return
			}
			switch p := p.(type) {
			case *packets.Puback:
			case *packets.Pubrec:
				b, _ := (&packets.Pubrel{PacketID: p.PacketID}).Append(nil, packets.V311)
				if _, err := conn.Write(b); err != nil {
					readErr <- err
					return
				}
			case *packets.Pubcomp:
				<-slots
				continue
			default:
				readErr <- fmt.Errorf("%s: unexpected %v", name, p.Type())
				return
			}
			mu.Lock()
			acked++
			done := acked == count
			mu.Unlock()
			if qos == 1 {
				<-slots
			}
			if done && qos == 1 {
				readErr <- nil
				return
			}
		}
	}()
	var buf []byte
	for i := 0; i < count; i++ {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			mu.Lock()
			defer mu.Unlock()
			return acked, fmt.Errorf("%s after %d sent: %v", name, i, err)
		}
		p := &packets.Publish{Topic: topic, Payload: []byte(fmt.Sprintf("%s/%d", name, i)), QoS: qos, PacketID: uint16(i%65535 + 1)}
		buf, _ = p.Append(buf[:0], packets.V311)
		if _, err := conn.Write(buf); err != nil {
			mu.Lock()
			defer mu.Unlock()
			return acked, err
		}
	}
	// Wait for the last window to drain (QoS 2: until every PUBCOMP).
	for k := 0; k < window; k++ {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			mu.Lock()
			defer mu.Unlock()
			if err == nil && acked == count {
				return acked, nil
			}
			return acked, fmt.Errorf("%s: %v", name, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return acked, nil
}

// countingSubscriber reads every PUBLISH on its connection, acknowledges it
// (QoS 1 PUBACK, QoS 2 PUBREC then PUBCOMP on PUBREL) and counts payloads.
type countingSubscriber struct {
	mu   sync.Mutex
	got  map[string]int
	dups int
	err  error
}

func (s *countingSubscriber) run(c *rawClient) {
	var out []byte
	for {
		c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		p, err := packets.ReadPacket(c.r, c.v, 1<<20)
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		out = out[:0]
		switch p := p.(type) {
		case *packets.Publish:
			s.mu.Lock()
			if s.got[string(p.Payload)]++; s.got[string(p.Payload)] > 1 {
				s.dups++
			}
			s.mu.Unlock()
			switch p.QoS {
			case 1:
				out, _ = (&packets.Puback{PacketID: p.PacketID}).Append(out, c.v)
			case 2:
				out, _ = (&packets.Pubrec{PacketID: p.PacketID}).Append(out, c.v)
			}
		case *packets.Pubrel:
			out, _ = (&packets.Pubcomp{PacketID: p.PacketID}).Append(out, c.v)
		}
		if len(out) > 0 {
			c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second)) // the harness left a short one
			if _, err := c.conn.Write(out); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
		}
	}
}

// fanIn runs pubs publishers with window messages outstanding each into one
// subscriber and fails unless every acknowledged message arrived. The
// subscriber's inflight window and queue are small, so the publishers
// overrun them many times over, as ten devices with 256 outstanding each
// overrun the defaults.
func fanIn(t *testing.T, qos byte, perPub int) {
	const pubs, window = 10, 256
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 16
		o.Limits.MaxQueued = 100
		o.Limits.SlowSubscriberTimeout = -1 // a loaded machine must not make the subscriber look stuck
	})
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("fanin-sub", true)
	sub.subscribe(1, "fanin/#", qos)
	cs := &countingSubscriber{got: map[string]int{}}
	go cs.run(sub)

	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	acked := make([]int, pubs)
	for i := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := publishWindowed(tb.addr, fmt.Sprintf("p%02d", i), fmt.Sprintf("fanin/%d", i), qos, perPub, window, deadline)
			acked[i] = n
			if err != nil {
				t.Errorf("publisher %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range acked {
		total += n
	}
	// Everything acknowledged has been routed: wait for the broker to hand
	// all of it out (nothing inflight or queued: the subscriber counted
	// each message before acknowledging it), then count.
	waitForWithin(t, 60*time.Second, "the subscriber drained", func() bool {
		st := tb.Stats()
		return st.Inflight == 0 && st.Queued == 0
	})
	st := tb.Stats()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	missing := 0
	for i := range pubs {
		for k := range perPub {
			if cs.got[fmt.Sprintf("p%02d/%d", i, k)] == 0 && k < acked[i] {
				missing++
			}
		}
	}
	t.Logf("acknowledged %d, received %d distinct (%d duplicates), dropped queue-full %d, publisher pauses %d, slow cut %d, subscriber error %v",
		total, len(cs.got), cs.dups, st.DroppedQueueFull, st.PublishersHeld, st.SlowSubscribersCut, cs.err)
	if total != pubs*perPub {
		t.Errorf("only %d of %d messages acknowledged", total, pubs*perPub)
	}
	if missing > 0 || st.DroppedQueueFull > 0 {
		t.Fatalf("%d acknowledged messages never arrived (dropped queue-full: %d)", missing, st.DroppedQueueFull)
	}
}

// waitForWithin polls cond until it holds, failing after d.
func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ten publishers with 256 QoS 1 messages outstanding each feed one
// subscriber whose window and queue hold far less: not one acknowledged
// message is lost (the broker holds back acknowledgements instead).
func TestFanInQoS1LosesNothing(t *testing.T) { fanIn(t, 1, 1500) }

// The same with QoS 2: every PUBREC'd message arrives.
func TestFanInQoS2LosesNothing(t *testing.T) { fanIn(t, 2, 600) }

// publishAsync starts a windowed publisher in the background; its result
// arrives on the returned channel.
func publishAsync(addr, name, topic string, count, window int, deadline time.Time) <-chan error {
	done := make(chan error, 1)
	go func() {
		n, err := publishWindowed(addr, name, topic, 1, count, window, deadline)
		if err == nil && n != count {
			err = fmt.Errorf("%s: %d of %d acknowledged", name, n, count)
		}
		done <- err
	}()
	return done
}

// A subscriber that stops reading (an MQTT 5 raw socket that never
// acknowledges) holds its publisher back until slow-subscriber-timeout,
// then is disconnected with 0x97; the publisher goes on, every one of its
// messages acknowledged, and the subscriber's persistent session queues
// offline under max-queued, where a drop is counted.
func TestSlowSubscriberIsCut(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 4
		o.Limits.MaxQueued = 20
		o.Limits.SlowSubscriberTimeout = 300 * time.Millisecond
	})
	slow, _ := mustConnectV5(t, tb.addr, "stuck", false, 600)
	slow.subscribeOpts(1, 0, packets.Subscription{Filter: "stuck/#", QoS: 1})

	const count = 300
	done := publishAsync(tb.addr, "stuck-pub", "stuck/x", count, 64, time.Now().Add(60*time.Second))
	waitForWithin(t, 30*time.Second, "the slow subscriber cut", func() bool { return tb.Stats().SlowSubscribersCut == 1 })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the publisher was not released after the slow subscriber was cut")
	}
	// What was sent before the cut, then DISCONNECT 0x97.
	got := 0
	for {
		p := slow.read(5 * time.Second)
		if d, ok := p.(*packets.Disconnect); ok {
			if d.ReasonCode != packets.QuotaExceeded {
				t.Fatalf("DISCONNECT %v, want 0x97 quota exceeded", d.ReasonCode)
			}
			break
		}
		if _, ok := p.(*packets.Publish); !ok {
			t.Fatalf("got %v before DISCONNECT", p.Type())
		}
		got++
	}
	slow.expectClosed(2 * time.Second)
	waitForWithin(t, 10*time.Second, "the session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	st := tb.Stats()
	t.Logf("received %d before the cut; queued %d, dropped queue-full %d, acks held %d", got, st.Queued, st.DroppedQueueFull, st.AcksHeld)
	if got > 4 {
		t.Errorf("%d messages sent past an inflight window of 4", got)
	}
	// Everything acknowledged is inflight, queued or counted as dropped
	// (offline, under max-queued): nothing vanished silently.
	if st.Inflight+st.Queued+st.DroppedQueueFull != count {
		t.Fatalf("inflight %d + queued %d + dropped %d != %d published", st.Inflight, st.Queued, st.DroppedQueueFull, count)
	}
	if st.AcksHeld == 0 || st.PublishersHeld == 0 {
		t.Fatalf("the publisher was never held: %+v", st)
	}
}

// A 3.1.1 subscriber that stops acknowledging is closed (3.1.1 has no
// DISCONNECT from the server) after the bound.
func TestSlowSubscriberIsCutV311(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 2
		o.Limits.MaxQueued = 10
		o.Limits.SlowSubscriberTimeout = 200 * time.Millisecond
	})
	slow := dialRaw(t, tb.addr)
	slow.mustConnect("stuck311", true)
	slow.subscribe(1, "stuck311", 1)
	done := publishAsync(tb.addr, "stuck311-pub", "stuck311", 100, 32, time.Now().Add(60*time.Second))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the publisher was not released")
	}
	if n := tb.Stats().SlowSubscribersCut; n != 1 {
		t.Fatalf("SlowSubscribersCut = %d, want 1", n)
	}
	for {
		p, err := slow.tryRead(5 * time.Second)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the slow subscriber's connection is still open")
		}
		if err != nil {
			break // closed, after what was sent
		}
		if _, ok := p.(*packets.Publish); !ok {
			t.Fatalf("got %v from the broker, want only PUBLISH then close", p.Type())
		}
	}
}

// One slow subscriber holds back only the publisher whose messages go to
// it: another publisher's messages keep reaching a fast subscriber on
// another topic, all of them, while the first stays held. Closing the slow
// subscriber releases the held publisher; closing the broker with a
// publisher held does not hang.
func TestSlowSubscriberHoldsOnlyItsPublishers(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 2
		o.Limits.MaxQueued = 10
		o.Limits.SlowSubscriberTimeout = -1 // never cut: only its publisher waits
	})
	slow := dialRaw(t, tb.addr)
	slow.mustConnect("slow-one", true)
	slow.subscribe(1, "slow/#", 1)

	var mu sync.Mutex
	fastGot := map[string]bool{}
	fast := pahoClient(t, tb.addr, "fast-one", nil)
	waitToken(t, "subscribe", fast.Subscribe("fast/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		fastGot[string(m.Payload())] = true
		mu.Unlock()
	}))

	// The held publisher: far more than the slow subscriber's window and
	// queue hold, so its acknowledgements stop.
	held := dialRaw(t, tb.addr)
	held.mustConnect("held-pub", true)
	const heldSent = 40
	for i := range heldSent {
		held.send(&packets.Publish{Topic: "slow/x", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(i + 1)})
	}
	waitForWithin(t, 10*time.Second, "acknowledgements held", func() bool { return tb.Stats().AcksHeld > 0 })
	heldAcks := 0
	for {
		p, err := held.tryRead(300 * time.Millisecond)
		if err != nil {
			break
		}
		if p.Type() != packets.PUBACK {
			t.Fatalf("held publisher got %v", p.Type())
		}
		heldAcks++
	}
	if heldAcks >= heldSent {
		t.Fatalf("all %d acknowledged: the publisher was not held", heldAcks)
	}

	// Meanwhile the other publisher and the fast subscriber are unaffected.
	const fastSent = 500
	if err := <-publishAsync(tb.addr, "free-pub", "fast/x", fastSent, 64, time.Now().Add(60*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, 30*time.Second, "the fast subscriber has everything", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fastGot) == fastSent
	})
	if p, err := held.tryRead(100 * time.Millisecond); err == nil {
		t.Fatalf("held publisher released while the slow subscriber is still stuck: %v", p.Type())
	}

	// The slow subscriber goes away: the held publisher gets every PUBACK.
	slow.conn.Close()
	for heldAcks < heldSent {
		held.expect(packets.PUBACK, uint16(heldAcks+1))
		heldAcks++
	}

	// Held again, then the broker closes: it must not hang.
	slow2 := dialRaw(t, tb.addr)
	slow2.mustConnect("slow-two", true)
	slow2.subscribe(1, "slow/#", 1)
	for i := range heldSent {
		held.send(&packets.Publish{Topic: "slow/y", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(heldSent + i + 1)})
	}
	waitForWithin(t, 10*time.Second, "held again", func() bool { return tb.Stats().PublishersHeld >= 2 })
	if err := closeBroker(t, tb.Broker, 5*time.Second); err != nil {
		t.Fatalf("Close with a publisher held: %v", err)
	}
}

// A client publishing QoS 1 to a topic it subscribes to, with an inflight
// window of one and a queue of two, gets every message back: its
// acknowledgements of what it receives are read while its own PUBACKs are
// held. Two clients publishing to each other likewise. The slow bound is
// off, so no cut can rescue a deadlock.
func TestBackpressureSelfAndCrossPublishNoDeadlock(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 1
		o.Limits.MaxQueued = 2
		o.Limits.SlowSubscriberTimeout = -1
	})
	const n = 300
	type peer struct {
		c    paho.Client
		mu   sync.Mutex
		got  map[string]bool
		name string
	}
	newPeer := func(name, filter string) *peer {
		p := &peer{name: name, got: map[string]bool{}}
		p.c = pahoClient(t, tb.addr, name, nil)
		waitToken(t, "subscribe", p.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			p.mu.Lock()
			p.got[string(m.Payload())] = true
			p.mu.Unlock()
		}))
		return p
	}
	self := newPeer("self", "self/#")
	a, b := newPeer("cross-a", "a/#"), newPeer("cross-b", "b/#")
	var toks []paho.Token
	for i := range n {
		toks = append(toks,
			self.c.Publish("self/x", 1, false, fmt.Sprintf("s%d", i)),
			a.c.Publish("b/x", 1, false, fmt.Sprintf("a%d", i)),
			b.c.Publish("a/x", 1, false, fmt.Sprintf("b%d", i)))
	}
	end := time.Now().Add(60 * time.Second)
	for _, tok := range toks {
		if !tok.WaitTimeout(time.Until(end)) || tok.Error() != nil {
			t.Fatalf("publish not acknowledged (deadlock?): %v; stats %+v", tok.Error(), tb.Stats())
		}
	}
	for _, p := range []*peer{self, a, b} {
		waitForWithin(t, 30*time.Second, p.name+" received everything", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.got) == n
		})
	}
	st := tb.Stats()
	t.Logf("acknowledgements held %d times", st.AcksHeld)
	if st.DroppedQueueFull != 0 {
		t.Fatalf("dropped %d", st.DroppedQueueFull)
	}
}

// A shared subscription's message that one member's full queue cannot
// take goes to another member instead of being dropped: a member that
// never acknowledges (window 1, queue 1) holds two, and every later
// message goes to the other member.
func TestSharedFullMemberPassesOn(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 1
		o.Limits.MaxQueued = 1
	})
	stuck := dialRaw(t, tb.addr)
	stuck.mustConnect("share-stuck", true)
	stuck.subscribe(1, "$share/g/jobs", 1)
	// From the broker itself (no publisher to hold back), so a member that
	// cannot take a message must pass it on.
	publish := func(i int) {
		if _, err := tb.Publish(PublishRequest{Topic: "jobs", Payload: []byte(strconv.Itoa(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	publish(0) // inflight
	publish(1) // queued: the stuck member is now full
	waitFor(t, "the stuck member full", func() bool { st := tb.Stats(); return st.Inflight == 1 && st.Queued == 1 })

	ok := dialRaw(t, tb.addr)
	ok.mustConnect("share-ok", true)
	ok.subscribe(1, "$share/g/jobs", 1)
	for i := 2; i < 12; i++ {
		publish(i)
		if got := ok.nextPayload(2 * time.Second); got != strconv.Itoa(i) {
			t.Fatalf("healthy member got %q, want %d", got, i)
		}
	}
	if st := tb.Stats(); st.DroppedQueueFull != 0 || st.DroppedShareDenied != 0 {
		t.Fatalf("dropped: queue full %d, share %d", st.DroppedQueueFull, st.DroppedShareDenied)
	}
}

// A publisher held back by a stuck persistent subscriber is released when
// a new connection takes the session over and drains it; the new
// connection gets every message, none lost.
func TestHeldPublisherReleasedByTakeover(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 2
		o.Limits.MaxQueued = 8
		o.Limits.SlowSubscriberTimeout = -1
	})
	const n = 60
	neu, done := takeOverHeld(t, tb, n, nil)
	receiveAll(t, neu, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// takeOverHeld has a persistent subscriber of take/# hold back a publisher
// of n QoS 1 messages until the publisher's whole window of 32 waits for
// its acknowledgements (so nothing more is routed), calls held then (when
// not nil), and takes the session over with a new connection, which it
// returns with the publisher's outcome.
func takeOverHeld(t *testing.T, tb *testBroker, n int, held func()) (*rawClient, <-chan error) {
	t.Helper()
	const window = 32
	old := dialRaw(t, tb.addr)
	old.mustConnect("taken", false)
	old.subscribe(1, "take/#", 1)
	done := publishAsync(tb.addr, "take-pub", "take/x", n, window, time.Now().Add(60*time.Second))
	waitForWithin(t, 10*time.Second, "the publisher's window held", func() bool { return tb.Stats().AcksHeld >= window })
	if held != nil {
		held()
	}
	neu := dialRaw(t, tb.addr)
	if ack := neu.mustConnect("taken", false); !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	return neu, done
}

// receiveAll acknowledges deliveries on c until it has had n distinct
// payloads, and fails the test when they take longer than 30 s in all.
func receiveAll(t *testing.T, c *rawClient, n int) {
	t.Helper()
	got := map[string]bool{}
	end := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(end) {
		p := c.expectPublish(10 * time.Second)
		c.ack(p)
		got[string(p.Payload)] = true
	}
	if len(got) != n {
		t.Fatalf("the new connection got %d of %d", len(got), n)
	}
}

// The same with the takeover held open in between: the old connection is
// closed, which releases the publisher, and the new one is not attached
// yet. What the publisher sends meanwhile is held for the new connection,
// not dropped past max-queued as for a session gone offline.
func TestHeldPublisherDuringTakeover(t *testing.T) {
	var started atomic.Pointer[testBroker]
	var before atomic.Pointer[Stats] // once nothing more is routed until the takeover
	var window sync.Once
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 2
		o.Limits.MaxQueued = 8
		o.Limits.SlowSubscriberTimeout = -1
		o.takingOver = func() {
			window.Do(func() {
				// Until the released publisher's next message has been
				// routed here: overrun (held again) or dropped. Counted
				// from before the old connection closed: the release and
				// that message may both come before this runs.
				tb := started.Load()
				st := before.Load()
				for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
					now := tb.Stats()
					if now.QueueOverruns > st.QueueOverruns || now.DroppedQueueFull > st.DroppedQueueFull {
						return
					}
					if time.Now().After(end) {
						t.Error("no message routed while the session changed hands")
						return
					}
				}
			})
		}
	})
	started.Store(tb)
	const n = 60
	neu, done := takeOverHeld(t, tb, n, func() { st := tb.Stats(); before.Store(&st) })
	if d := tb.Stats().DroppedQueueFull; d != 0 {
		t.Fatalf("%d messages dropped while the session changed hands", d)
	}
	receiveAll(t, neu, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A 3.1.1 publisher that does not wait for its acknowledgements has its
// reading stopped at max-inbound-qos2 held ones: no further PUBLISH is
// handled while the subscriber is stuck. Closing the broker then does not
// hang on the stopped reader.
func TestHeldPublisherReadingStops(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits.MaxInflight = 1
		o.Limits.MaxQueued = 1
		o.Limits.MaxInboundQoS2 = 8
		o.Limits.SlowSubscriberTimeout = -1
	})
	stuck := dialRaw(t, tb.addr)
	stuck.mustConnect("never-acks", true)
	stuck.subscribe(1, "pause/#", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("floods", true)
	for i := range 40 {
		pub.send(&packets.Publish{Topic: "pause/x", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(i + 1)})
	}
	waitForWithin(t, 10*time.Second, "the reader stopped", func() bool { return tb.Stats().PublisherReadPauses == 1 })
	time.Sleep(100 * time.Millisecond) // give a reader that did not stop the chance to go on (it must not)
	if st := tb.Stats(); st.AcksHeld != 8 || st.QueueOverruns > 8 {
		t.Fatalf("acks held %d, overruns %d: want reading stopped at 8 held", st.AcksHeld, st.QueueOverruns)
	}
	if err := closeBroker(t, tb.Broker, 5*time.Second); err != nil {
		t.Fatalf("Close with a stopped reader: %v", err)
	}
}
