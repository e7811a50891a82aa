package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
)

// Retained messages survive a restart with their properties: the latest
// value of a topic, and a cleared topic stays cleared.
func TestRestartRetained(t *testing.T) {
	pb := startPersistent(t, nil)
	pub, _ := mustConnectV5(t, pb.addr, "ret-pub", true, 0)
	send := func(pid uint16, topic, payload string, ct string) {
		p := &packets.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, PacketID: pid, Retain: true}
		p.Props.ContentType = ct
		pub.send(p)
		if ack := pub.expect(packets.PUBACK, pid).(*packets.Puback); ack.ReasonCode >= 0x80 {
			t.Fatalf("PUBACK %v", ack.ReasonCode)
		}
	}
	send(1, "ret/a", "first", "")
	send(2, "ret/a", "latest", "text/plain")
	send(3, "ret/b", "to be cleared", "")
	send(4, "ret/b", "", "")
	pub.send(&packets.Publish{Topic: "ret/c", Payload: []byte("qos0"), Retain: true}) // QoS 0: no ack to wait for
	waitFor(t, "three retained changes", func() bool { return pb.Stats().Retained == 2 })
	pb.restart()

	if got := pb.Stats().Retained; got != 2 {
		t.Fatalf("retained after restart: %d, want 2 (ret/a, ret/c)", got)
	}
	sub, _ := mustConnectV5(t, pb.addr, "ret-sub", true, 0)
	sub.subscribe(1, "ret/#", 1)
	got := map[string]*packets.Publish{}
	for range 2 {
		p := sub.expectPublish(2 * time.Second)
		sub.ack(p)
		got[p.Topic] = p
	}
	sub.expectNothing(200 * time.Millisecond) // not ret/b
	if a := got["ret/a"]; a == nil || string(a.Payload) != "latest" || !a.Retain || a.Props.ContentType != "text/plain" {
		t.Fatalf("ret/a after restart: %+v", a)
	}
	if c := got["ret/c"]; c == nil || string(c.Payload) != "qos0" {
		t.Fatalf("ret/c after restart: %+v", c)
	}
}

// A persistent session comes back after a restart with its subscriptions
// (and their options): CONNACK says session present and messages reach it
// without a new SUBSCRIBE. A clean session is not restored.
func TestRestartPersistentSessionAndSubscriptions(t *testing.T) {
	pb := startPersistent(t, nil)
	c, _ := mustConnectV5(t, pb.addr, "ps", false, 3600)
	c.subscribeOpts(1, 42, packets.Subscription{Filter: "ps/#", QoS: 1, NoLocal: true})
	c.disconnect()
	clean := dialRaw(t, pb.addr)
	clean.mustConnect("cs", true)
	clean.subscribe(1, "cs/#", 1)
	pb.restart()

	if st := pb.Stats(); st.ClientsPersisted != 1 || st.Subscriptions != 1 {
		t.Fatalf("after restart: persisted %d subscriptions %d, want 1 and 1", st.ClientsPersisted, st.Subscriptions)
	}
	c2, ack := mustConnectV5(t, pb.addr, "ps", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("persistent session not present after restart")
	}
	// No Local survived: its own publish does not come back.
	c2.send(&packets.Publish{Topic: "ps/own", Payload: []byte("own"), QoS: 1, PacketID: 5})
	c2.expect(packets.PUBACK, 5)
	pub := dialRaw(t, pb.addr)
	pub.mustConnect("ps-pub", true)
	pub.publish1(1, "ps/x", "after restart", false)
	p := c2.expectPublish(2 * time.Second)
	if string(p.Payload) != "after restart" || len(p.Props.SubscriptionIDs) != 1 || p.Props.SubscriptionIDs[0] != 42 {
		t.Fatalf("got %q subscription ids %v, want the message with id 42", p.Payload, p.Props.SubscriptionIDs)
	}
	c2.ack(p)

	cs := dialRaw(t, pb.addr)
	if ack := cs.mustConnect("cs", false); ack.SessionPresent {
		t.Fatal("a clean session was restored")
	}
	pub.publish1(2, "cs/x", "nobody", false)
	cs.expectNothing(200 * time.Millisecond)
}

// QoS 1 and QoS 2 messages queued for an offline persistent session
// survive a restart: none missing, in order, QoS 2 not duplicated; and
// once acknowledged they are gone for good, across a second restart.
func TestRestartQueuedQoS1And2(t *testing.T) {
	pb := startPersistent(t, nil)
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("q-sub", false)
	sub.subscribe(1, "q/#", 2)
	sub.disconnect()
	waitFor(t, "offline", func() bool { return pb.Stats().ClientsPersisted == 1 })

	pub := dialRaw(t, pb.addr)
	pub.mustConnect("q-pub", true)
	const n = 40
	for i := range n {
		if i%2 == 0 {
			pub.publish1(uint16(i+1), "q/1", fmt.Sprint(i), false)
		} else {
			pub.publish2(uint16(i+1), "q/2", fmt.Sprint(i))
		}
	}
	pb.restart()

	sub2 := dialRaw(t, pb.addr)
	if ack := sub2.mustConnect("q-sub", false); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	for i, p := range sub2.receiveAll(n, 2*time.Second) {
		wantQoS := byte(1 + i%2)
		if string(p.Payload) != fmt.Sprint(i) || p.QoS != wantQoS {
			t.Fatalf("message %d: %q QoS %d, want %q QoS %d", i, p.Payload, p.QoS, fmt.Sprint(i), wantQoS)
		}
	}
	sub2.expectNothing(300 * time.Millisecond)
	sub2.disconnect()
	pb.restart()

	sub3 := dialRaw(t, pb.addr)
	if ack := sub3.mustConnect("q-sub", false); !ack.SessionPresent {
		t.Fatal("session not present after the second restart")
	}
	sub3.expectNothing(300 * time.Millisecond) // every message was acknowledged
}

// A backlog larger than a page is read in pages when the session resumes,
// not at start: none is in memory until then, and all arrive in order.
func TestRestartBacklogReadLazily(t *testing.T) {
	pb := startPersistent(t, func(o *Options) { o.Limits.MaxQueued = 5000 })
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("lazy", false)
	sub.subscribe(1, "lazy/#", 1)
	sub.disconnect()
	pub := dialRaw(t, pb.addr)
	pub.mustConnect("lazy-pub", true)
	n := 3*storePage + 17
	for i := range n {
		pub.send(&packets.Publish{Topic: "lazy/x", Payload: []byte(fmt.Sprint(i)), QoS: 1, PacketID: uint16(i%60000 + 1)})
	}
	for i := range n {
		pub.expect(packets.PUBACK, uint16(i%60000+1))
	}
	pb.restart()
	if q := memoryQueued(pb.Broker); q != 0 {
		t.Fatalf("%d messages in memory after recovery, want 0 until the session resumes", q)
	}
	if q := pb.Stats().Queued; q != int64(n) {
		t.Fatalf("Stats.Queued %d after recovery, want the %d waiting in the store", q, n)
	}
	sub2 := dialRaw(t, pb.addr)
	sub2.mustConnect("lazy", false)
	for i := range n {
		if got := sub2.nextPayload(2 * time.Second); got != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	sub2.expectNothing(200 * time.Millisecond)
}

// A QoS 2 PUBLISH answered with PUBREC before the restart completes after
// it: a resent PUBLISH (DUP) with the same id is recognised and not routed
// again, PUBREL gets PUBCOMP success, and the subscriber has it exactly
// once.
func TestRestartQoS2PubrecCompletesAfter(t *testing.T) {
	pb := startPersistent(t, nil)
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("x2-sub", false)
	sub.subscribe(1, "x2/#", 2)
	sub.disconnect()

	pub, _ := mustConnectV5(t, pb.addr, "x2-pub", false, 3600)
	pub.send(&packets.Publish{Topic: "x2/t", Payload: []byte("once"), QoS: 2, PacketID: 7})
	if rec := pub.expect(packets.PUBREC, 7).(*packets.Pubrec); rec.ReasonCode != packets.Success {
		t.Fatalf("PUBREC %v", rec.ReasonCode)
	}
	pb.restart()

	pub2, ack := mustConnectV5(t, pb.addr, "x2-pub", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("publisher session not present")
	}
	pub2.send(&packets.Publish{Topic: "x2/t", Payload: []byte("once"), QoS: 2, PacketID: 7, Dup: true})
	pub2.expect(packets.PUBREC, 7)
	pub2.send(&packets.Pubrel{PacketID: 7})
	if comp := pub2.expect(packets.PUBCOMP, 7).(*packets.Pubcomp); comp.ReasonCode != packets.Success {
		t.Fatalf("PUBCOMP %v after restart, want success: the packet id was lost", comp.ReasonCode)
	}
	sub2 := dialRaw(t, pb.addr)
	sub2.mustConnect("x2-sub", false)
	if p := sub2.receiveAll(1, 2*time.Second)[0]; string(p.Payload) != "once" || p.QoS != 2 {
		t.Fatalf("got %q QoS %d", p.Payload, p.QoS)
	}
	sub2.expectNothing(300 * time.Millisecond)
}

// An outbound QoS 2 message the subscriber answered with PUBREC before the
// restart is not sent again after it: the broker resends PUBREL with the
// same packet id ([MQTT-4.4.0-1]).
func TestRestartOutboundQoS2ResendsPubrel(t *testing.T) {
	pb := startPersistent(t, nil)
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("o2-sub", false)
	sub.subscribe(1, "o2/#", 2)
	pub := dialRaw(t, pb.addr)
	pub.mustConnect("o2-pub", true)
	pub.publish2(1, "o2/t", "m")
	p := sub.expectPublish(2 * time.Second)
	sub.send(&packets.Pubrec{PacketID: p.PacketID})
	sub.expect(packets.PUBREL, p.PacketID)
	// No PUBCOMP: the connection ends first.
	waitFor(t, "PUBREC stored", func() bool {
		recs, err := pb.st.Inflight("o2-sub")
		return err == nil && len(recs) == 1 && recs[0].State == 2
	})
	pb.restart()
	sub2 := dialRaw(t, pb.addr)
	sub2.mustConnect("o2-sub", false)
	sub2.expect(packets.PUBREL, p.PacketID)
	sub2.send(&packets.Pubcomp{PacketID: p.PacketID})
	sub2.expectNothing(300 * time.Millisecond)
}

// Session expiry keeps counting while the broker is down: a session whose
// expiry passed during the downtime is gone after the restart, one with a
// long expiry is still there.
func TestRestartSessionExpiryAcrossDowntime(t *testing.T) {
	pb := startPersistent(t, nil)
	short, _ := mustConnectV5(t, pb.addr, "exp-short", false, 1)
	short.subscribe(1, "exp/#", 1)
	short.disconnect()
	long, _ := mustConnectV5(t, pb.addr, "exp-long", false, 3600)
	long.subscribe(1, "exp/#", 1)
	long.disconnect()
	offline := time.Now()
	if err := closeBroker(t, pb.Broker, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The broker is down for longer than the short expiry.
	time.Sleep(time.Until(offline.Add(1100 * time.Millisecond)))
	if err := pb.st.Close(); err != nil {
		t.Fatal(err)
	}
	pb.start()
	if st := pb.Stats(); st.ClientsPersisted != 1 || st.Subscriptions != 1 {
		t.Fatalf("after restart: persisted %d subscriptions %d, want only exp-long", st.ClientsPersisted, st.Subscriptions)
	}
	if _, ack := mustConnectV5(t, pb.addr, "exp-short", false, 1); ack.SessionPresent {
		t.Fatal("session expired during the downtime is present")
	}
	if _, ack := mustConnectV5(t, pb.addr, "exp-long", false, 3600); !ack.SessionPresent {
		t.Fatal("session with a long expiry is gone")
	}
}

// A delayed will pending when the broker stops goes out after the restart,
// once its delay (counted from the disconnect) has run, with its
// properties; and only once: the stored session no longer holds it.
func TestRestartDelayedWill(t *testing.T) {
	pb := startPersistent(t, nil)
	watch, _ := mustConnectV5(t, pb.addr, "dw-watch", false, 3600)
	watch.subscribeOpts(1, 0, packets.Subscription{Filter: "dw/#", QoS: 1})
	watch.disconnect()

	c := v5WillConnect(t, pb.addr, "dw", "dw/will", 2, 3600)
	c.conn.Close() // abnormal: the will waits for its delay
	waitFor(t, "will pending in the stored session", func() bool {
		var pending bool
		pb.st.Sessions(func(r *store.SessionRecord) error {
			if r.ClientID == "dw" && !r.OfflineSince.IsZero() && r.Will != nil {
				pending = true
			}
			return nil
		})
		return pending
	})
	pb.restart()

	w, _ := mustConnectV5(t, pb.addr, "dw-watch", false, 3600)
	p := w.expectPublish(5 * time.Second)
	w.ack(p)
	if p.Topic != "dw/will" || string(p.Payload) != "gone:dw" || p.Props.ContentType != "text/plain" {
		t.Fatalf("will after restart: %s %q %+v", p.Topic, p.Payload, p.Props)
	}
	waitFor(t, "will gone from the stored session", func() bool {
		var gone bool
		pb.st.Sessions(func(r *store.SessionRecord) error {
			if r.ClientID == "dw" && r.Will == nil {
				gone = true
			}
			return nil
		})
		return gone
	})
	waitFor(t, "the will's PUBACK stored", func() bool { n, err := pb.st.QueueLen("dw-watch"); return err == nil && n == 0 })
	pb.restart()
	w2, _ := mustConnectV5(t, pb.addr, "dw-watch", false, 3600)
	w2.expectNothing(300 * time.Millisecond)
}

// memoryQueued is how many deliveries the broker's sessions hold in memory
// (Stats.Queued also counts those waiting in the store).
func memoryQueued(b *Broker) int {
	n := 0
	b.store.Range(func(s *Session) bool {
		s.mu.Lock()
		n += s.queue.len()
		s.mu.Unlock()
		return true
	})
	return n
}
