package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// The outbox batches messages per topic, in the order they were added,
// and starts a new batch of a topic when a QoS 1/2 message waits for other
// nodes than the batch's, or when the batch is full; each batch crosses as
// one NATS message on its topic's subject and decodes to its messages.
func TestOutboxBatchesPerTopicInOrder(t *testing.T) {
	ns := startNATS(t)
	tn := startNode(t, ns, "o1")
	o := newOutbox(tn.node) // its own: no sendLoop takes these batches

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 100)
	if _, err := nc.ChanSubscribe("mqttd.m.>", msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	var answered []string
	done := func(tag string) func(error) {
		return func(err error) { answered = append(answered, fmt.Sprint(tag, ":", err)) }
	}
	add := func(topic string, body string, qos byte, expect []string, d func(error)) {
		t.Helper()
		if err := o.add(topic, []byte(body), qos, false, "c", nil, expect, d); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "a0", 0, nil, nil)
	add("b", "b0", 1, []string{"x"}, done("b0"))
	add("a", "a1", 1, []string{"x"}, done("a1"))
	add("a", "a2", 1, []string{"x"}, done("a2"))
	add("a", "a3", 1, []string{"x", "y"}, done("a3")) // other nodes: a new batch
	add("a", "a4", 0, nil, nil)                       // joins it
	big := string(bytes.Repeat([]byte{'z'}, batchTarget))
	add("b", big, 0, nil, nil)  // would overflow b's batch: a new one
	add("b", "b1", 0, nil, nil) // and so would this one join the full one

	want := []struct {
		subject string
		bodies  []string
		dones   int
	}{
		{"mqttd.m.a", []string{"a0", "a1", "a2"}, 2},
		{"mqttd.m.b", []string{"b0"}, 1},
		{"mqttd.m.a", []string{"a3", "a4"}, 1},
		{"mqttd.m.b", []string{big}, 0},
		{"mqttd.m.b", []string{"b1"}, 0},
	}
	if len(o.list) != len(want) {
		t.Fatalf("%d batches, want %d", len(o.list), len(want))
	}
	for i, w := range want {
		if got := len(o.list[i].dones); got != w.dones {
			t.Errorf("batch %d waits for %d messages, want %d", i, got, w.dones)
		}
	}
	if got := o.list[2].expect; fmt.Sprint(got) != "[x y]" {
		t.Errorf("batch 2 expects %v, want [x y]", got)
	}
	for _, b := range o.list {
		o.send(b)
	}
	for i, w := range want {
		var m *nats.Msg
		select {
		case m = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d did not arrive", i)
		}
		if m.Subject != w.subject {
			t.Errorf("batch %d on %s, want %s", i, m.Subject, w.subject)
		}
		if (w.dones > 0) != (m.Reply != "") {
			t.Errorf("batch %d reply %q, want one: %v", i, m.Reply, w.dones > 0)
		}
		var bodies []string
		if err := eachEnvelope(m.Data, func(msg *mqtt.Message) { bodies = append(bodies, string(msg.Payload)) }); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if fmt.Sprint(bodies) != fmt.Sprint(w.bodies) {
			t.Errorf("batch %d holds %.40q, want %.40q", i, bodies, w.bodies)
		}
	}
	// Nodes x and y do not subscribe to anything (they do not exist): each
	// wait ends as it is registered, in the order the batches left, and
	// with no error.
	if got := fmt.Sprint(answered); got != "[a1:<nil> a2:<nil> b0:<nil> a3:<nil>]" {
		t.Errorf("ended %v", got)
	}
}

// A wait registered for a node that stopped subscribing to the topic
// between the batching and the sending ends at once: the node unsubscribed
// from NATS too and would never answer, and the recheck its removal set off
// ran before the wait existed.
func TestConfirmWaitForNodeNotSubscribedEnds(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "w1"), startNode(t, ns, "w2")
	synced(t, n1, n2)
	got := make(chan error, 1)
	n1.node.confirms.expect("w/t", []string{"w2"}, []func(error){func(err error) { got <- err }})
	select { // ended within expect: no clock involved
	case err := <-got:
		if err != nil {
			t.Fatalf("ended with %v, want confirmed (nothing to answer for)", err)
		}
	default:
		t.Fatal("the wait did not end")
	}
}

// A malformed batch is counted and not answered; the messages before the
// malformed one were routed (their answers wait for the whole batch).
func TestMalformedBatchCounted(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "b1"), startNode(t, ns, "b2")
	r := subscribe(t, client(t, n2, "s", true), "mb/t", 1)
	synced(t, n1, n2)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	env, err := appendEnvelope(nil, "mb/t", []byte("ok"), 1, false, "c", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{envelopeBatch, 0, 0, 0, byte(len(env))}
	data = append(data, env...)
	data = append(data, 0, 0, 0, 99, 1) // claims 99 bytes, has 1
	answers, err := nc.SubscribeSync("answers")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishMsg(&nats.Msg{Subject: "mqttd.m.mb.t", Reply: "answers", Data: data}); err != nil {
		t.Fatal(err)
	}
	if m := r.next(t); string(m.Payload()) != "ok" {
		t.Fatalf("got %q", m.Payload())
	}
	deadline := time.Now().Add(10 * time.Second)
	for n2.node.stats.RemoteBad.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("malformed batch not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m, err := answers.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a malformed batch was answered: %q", m.Data)
	}
}

// A batch from another node is routed with one store commit, and answered
// once that commit is durable: twenty QoS 1 messages for a persistent
// session (which does not acknowledge them, so it writes nothing itself)
// are one commit, and arrive in order.
func TestBatchStoredInOneCommit(t *testing.T) {
	ns := startNATS(t)
	sn := startShared(t, ns, "s1", memstore.New(), 0)
	sub, err := net.Dial("tcp", sn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var vh []byte
	vh = appendStr(vh, "MQTT")
	vh = append(vh, 4, 0x00, 0, 60) // 3.1.1, clean session 0
	vh = appendStr(vh, "keeper")
	sub.Write(packet(0x10, vh))
	rd := bufio.NewReader(sub)
	if _, _, err := readPacket(rd); err != nil { // CONNACK
		t.Fatal(err)
	}
	sub.Write(packet(0x82, append(appendStr([]byte{0, 1}, "sc/t"), 1)))
	if typ, _, err := readPacket(rd); err != nil || typ != 0x90 {
		t.Fatalf("SUBACK: %x %v", typ, err)
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	answers, err := nc.SubscribeSync("answers")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{envelopeBatch}
	for i := range 20 {
		at := len(data)
		data, err = appendEnvelope(append(data, 0, 0, 0, 0), "sc/t", payload(i), 1, false, "p", time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint32(data[at:], uint32(len(data)-at-batchLenSize))
	}
	c0 := sn.st.commits.Load()
	if err := nc.PublishMsg(&nats.Msg{Subject: "mqttd.m.sc.t", Reply: "answers.7", Data: data}); err != nil {
		t.Fatal(err)
	}
	a, err := answers.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal("no answer:", err)
	}
	if string(a.Data) != "s1\n7" {
		t.Errorf("answer %q, want %q", a.Data, "s1\n7")
	}
	if n := sn.st.commits.Load() - c0; n != 1 {
		t.Errorf("%d store commits for one batch, want 1", n)
	}
	sub.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 20 {
		typ, body, err := readPacket(rd)
		if err != nil || typ&0xf0 != 0x30 {
			t.Fatalf("message %d: %x %v", i, typ, err)
		}
		tl := int(binary.BigEndian.Uint16(body))
		if got := string(body[2+tl+2:]); got != string(payload(i)) {
			t.Fatalf("message %d is %q, want %q", i, got, payload(i))
		}
	}
}

// Batches stay within NATS's max_payload when it is smaller than the
// batch target: a batch above it would be refused whole, and every
// message in it with it.
func TestOutboxBatchesFitMaxPayload(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, MaxPayload: 2048,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	tn := startNode(t, ns, "mp")
	o := newOutbox(tn.node) // its own: no sendLoop takes these batches
	body := bytes.Repeat([]byte{'x'}, 100)
	for range 50 {
		if err := o.add("mp/t", body, 0, false, "c", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.list) < 3 {
		t.Errorf("%d batches for 5,000 bytes of payload, want at least 3", len(o.list))
	}
	for i, b := range o.list {
		if len(b.data) > 2048 {
			t.Errorf("batch %d is %d bytes, above max_payload 2048", i, len(b.data))
		}
	}
	failed := tn.node.stats.ForwardFailed.Load()
	for _, b := range o.list {
		o.send(b)
	}
	if n := tn.node.stats.ForwardFailed.Load() - failed; n != 0 {
		t.Errorf("NATS refused %d messages", n)
	}
}
