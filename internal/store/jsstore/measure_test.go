package jsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// TestMeasureBroker measures a real broker end to end on this store and
// on pebblestore (durability sync) in the same run: 10 publishers → 10
// persistent subscribers of one filter at QoS 1 (paho clients, each
// publisher keeping up to 64 messages unacknowledged, each message queued
// for all ten sessions), through an embedded nats-server with JetStream.
// The stores alternate within each round and the ratio is taken per
// round. Set MQTTD_JSSTORE_MEASURE=1 to run it; MQTTD_JSSTORE_MSGS (default
// 300 per publisher) and MQTTD_JSSTORE_ROUNDS (default 3) size it.
func TestMeasureBroker(t *testing.T) {
	if os.Getenv("MQTTD_JSSTORE_MEASURE") == "" {
		t.Skip("set MQTTD_JSSTORE_MEASURE=1 to measure")
	}
	perPub, rounds := 300, 3
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_MSGS")); err == nil && v > 0 {
		perPub = v
	}
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	ns := startNATS(t, t.TempDir(), -1)
	for r := range rounds {
		nc := connect(t, ns.ClientURL())
		js := open(t, nc, Options{Prefix: fmt.Sprint("measure", r)})
		before := streamLastSeq(t, nc, js.stream)
		cpu0 := cpuTime()
		jsRate := measureBroker(t, js, 10, 10, perPub)
		jsCPU := (cpuTime() - cpu0) / time.Duration(10*perPub)
		stored := streamLastSeq(t, nc, js.stream) - before
		ps, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: store.Sync, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		cpu0 = cpuTime()
		pRate := measureBroker(t, ps, 10, 10, perPub)
		pCPU := (cpuTime() - cpu0) / time.Duration(10*perPub)
		ps.Close()
		t.Logf("round %d: jetstream %.0f msgs/s, pebble %.0f msgs/s (acknowledged publishes, each to 10 sessions): jetstream/pebble %.3f; %.2f stream messages per publish; process CPU per publish jetstream %v, pebble %v",
			r, jsRate, pRate, jsRate/pRate, float64(stored)/float64(10*perPub), jsCPU, pCPU)
	}
}

// cpuTime is the CPU time the process (broker, clients and the embedded
// nats-server alike) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// streamLastSeq is the stream's last sequence: how many messages were
// ever stored in it.
func streamLastSeq(t testing.TB, nc *nats.Conn, name string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestMeasureBacklog measures how fast a session's stored backlog drains
// into a client: a broker queues MQTTD_JSSTORE_BACKLOG (default 10,000)
// QoS 1 messages for an offline persistent session and stops; a second
// broker on a new Store on the same stream (as a node taking the session
// over would) restores it, and the time from the subscriber's CONNECT
// to its last message gives the rate, which the same run measures on
// pebblestore. MQTTD_JSSTORE_BACKLOG_SESSIONS (default 1) sessions
// subscribe, each message queued for all of them: with more than one,
// the messages are shared (stored once, in body records) and the
// sessions resume the same backlog at once. Set MQTTD_JSSTORE_MEASURE=1
// to run it.
func TestMeasureBacklog(t *testing.T) {
	if os.Getenv("MQTTD_JSSTORE_MEASURE") == "" {
		t.Skip("set MQTTD_JSSTORE_MEASURE=1 to measure")
	}
	n, k := 10000, 1
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_BACKLOG")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_BACKLOG_SESSIONS")); err == nil && v > 0 {
		k = v
	}
	ns := startNATS(t, t.TempDir(), -1)
	jsOpen := func() store.Store { return open(t, connect(t, ns.ClientURL()), Options{Prefix: "backlog"}) }
	dir := t.TempDir()
	pOpen := func() store.Store {
		ps, err := pebblestore.Open(dir, pebblestore.Options{Durability: store.Sync, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	jsRate, jsCPU := measureBacklog(t, jsOpen, n, k)
	pRate, pCPU := measureBacklog(t, pOpen, n, k)
	t.Logf("backlog of %d for %d sessions: jetstream %.0f msgs/s, pebble %.0f msgs/s drained into the clients: jetstream/pebble %.3f; process CPU per message drained jetstream %v, pebble %v",
		n, k, jsRate, pRate, jsRate/pRate, jsCPU, pCPU)
}

// measureBacklog returns the messages drained per second (every
// session's together) and the process's CPU time per message.
func measureBacklog(t *testing.T, openStore func() store.Store, n, k int) (float64, time.Duration) {
	newBroker := func(st store.Store) *mqtt.Broker {
		br, err := mqtt.New(mqtt.Options{
			Listeners:   []mqtt.ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
			SysInterval: -1, Store: st, Logger: quiet(),
			Limits: mqtt.Limits{MaxInflight: 100, MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := br.Start(); err != nil {
			t.Fatal(err)
		}
		return br
	}
	stop := func(br *mqtt.Broker, st store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		br.Close(ctx)
		st.Close()
	}
	var got atomic.Int64
	all := make(chan struct{})
	subscriber := func(url string, i int) paho.Client {
		id := "backlog-sub"
		if i > 0 {
			id = fmt.Sprint(id, "-", i)
		}
		o := paho.NewClientOptions().AddBroker(url).SetClientID(id).
			SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(false)
		o.SetDefaultPublishHandler(func(paho.Client, paho.Message) {
			if got.Add(1) == int64(n*k) {
				close(all)
			}
		})
		return paho.NewClient(o)
	}
	st := openStore()
	br := newBroker(st)
	url := "tcp://" + br.Addr("tcp").String()
	for i := range k {
		c := subscriber(url, i)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscriber connect:", tk.Error())
		}
		if tk := c.Subscribe("backlog/#", 1, nil); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscribe:", tk.Error())
		}
		c.Disconnect(0)
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("backlog-pub").SetAutoReconnect(false))
	if tk := pub.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatal("publisher connect:", tk.Error())
	}
	window := make(chan paho.Token, 64)
	wait := func(tk paho.Token) {
		if !tk.WaitTimeout(60*time.Second) || tk.Error() != nil {
			t.Fatal("publish:", tk.Error())
		}
	}
	for i := range n {
		if len(window) == cap(window) {
			wait(<-window)
		}
		window <- pub.Publish("backlog/t", 1, false, fmt.Sprint("m", i))
	}
	close(window)
	for tk := range window {
		wait(tk)
	}
	pub.Disconnect(0)
	stop(br, st)

	st = openStore()
	br = newBroker(st)
	defer stop(br, st)
	var cs []paho.Client
	for i := range k {
		cs = append(cs, subscriber("tcp://"+br.Addr("tcp").String(), i))
	}
	start, cpu0 := time.Now(), cpuTime()
	var toks []paho.Token
	for _, c := range cs {
		toks = append(toks, c.Connect())
		defer c.Disconnect(0)
	}
	for _, tk := range toks {
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscriber reconnect:", tk.Error())
		}
	}
	select {
	case <-all:
	case <-time.After(300 * time.Second):
		t.Fatalf("drained %d of %d", got.Load(), n*k)
	}
	return float64(n*k) / time.Since(start).Seconds(), (cpuTime() - cpu0) / time.Duration(n*k)
}

// measureBroker runs one 10→10 load on a broker with st and returns the
// publishes per second, from the first publish until every subscriber
// has every message.
func measureBroker(t *testing.T, st store.Store, npubs, nsubs, perPub int) float64 {
	br, err := mqtt.New(mqtt.Options{
		Listeners:   []mqtt.ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
		Store:       st,
		Logger:      quiet(),
		Limits:      mqtt.Limits{MaxInflight: 1000, MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		br.Close(ctx)
	}()
	url := "tcp://" + br.Addr("tcp").String()
	total := int64(npubs * perPub * nsubs)
	var got atomic.Int64
	all := make(chan struct{})
	for i := range nsubs {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("msub-", i)).
			SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(false)
		c := paho.NewClient(o)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscriber connect:", tk.Error())
		}
		defer c.Disconnect(0)
		tk := c.Subscribe("bench/#", 1, func(paho.Client, paho.Message) {
			if got.Add(1) == total {
				close(all)
			}
		})
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscribe:", tk.Error())
		}
	}
	payload := make([]byte, 64)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range npubs {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("mpub-", i)).SetAutoReconnect(false)
		c := paho.NewClient(o)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("publisher connect:", tk.Error())
		}
		defer c.Disconnect(0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan paho.Token, 64)
			wait := func(tk paho.Token) {
				if !tk.WaitTimeout(30*time.Second) || tk.Error() != nil {
					t.Error("publish:", tk.Error())
				}
			}
			for range perPub {
				if len(window) == cap(window) {
					wait(<-window)
				}
				window <- c.Publish(fmt.Sprint("bench/", i), 1, false, payload)
			}
			close(window)
			for tk := range window {
				wait(tk)
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(120 * time.Second):
		t.Fatalf("delivered %d of %d", got.Load(), total)
	}
	return float64(npubs*perPub) / time.Since(start).Seconds()
}

// TestMeasureBatches measures what a commit costs the server, whatever the
// store does around it: one atomic batch of 1, 22 (a message queued for
// ten sessions) and 352 messages against the same messages published
// plainly (pipelined, the last one acknowledged) and against one message
// of the same bytes; then atomic batches of 22 with 1 to 64 of them in
// flight at once on one connection. On one replica a batch is staged in a
// file store of its own that the server fsyncs before applying it; on
// three it is staged in memory and goes through the stream's Raft log.
// Set MQTTD_JSSTORE_MEASURE=1 to run it.
func TestMeasureBatches(t *testing.T) {
	if os.Getenv("MQTTD_JSSTORE_MEASURE") == "" {
		t.Skip("set MQTTD_JSSTORE_MEASURE=1 to measure")
	}
	ns := startNATS(t, t.TempDir(), -1)
	s1 := open(t, connect(t, ns.ClientURL()), Options{})
	st3, err := openReplicated(t, startCluster3(t), 0, "m3")
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	s3 := st3.(*Store)
	ctx := context.Background()
	const iters = 30
	batch := func(s *Store, tag string, n int) []pubMsg {
		ms := make([]pubMsg, n)
		for i := range ms {
			ms[i] = pubMsg{subj: fmt.Sprint(s.p, "x.", tag, ".", i), data: make([]byte, 24)}
		}
		return ms
	}
	for _, c := range []struct {
		name string
		s    *Store
	}{{"R1", s1}, {"R3", s3}} {
		s, nc := c.s, c.s.nc
		for _, n := range []int{1, 22, 352} {
			t0 := time.Now()
			for k := range iters {
				if _, err := s.publishBatch(ctx, batch(s, fmt.Sprint("a", n, "_", k), n)); err != nil {
					t.Fatal(err)
				}
			}
			atomic := time.Since(t0) / iters
			t0 = time.Now()
			for k := range iters {
				ms := batch(s, fmt.Sprint("p", n, "_", k), n)
				for i, m := range ms {
					nm := nats.NewMsg(m.subj)
					nm.Data = m.data
					if i < len(ms)-1 {
						if err := nc.PublishMsg(nm); err != nil {
							t.Fatal(err)
						}
						continue
					}
					if _, err := nc.RequestMsg(nm, 10*time.Second); err != nil {
						t.Fatal(err)
					}
				}
			}
			plain := time.Since(t0) / iters
			t0 = time.Now()
			for k := range iters {
				if _, err := nc.Request(fmt.Sprint(s.p, "y.", n, ".", k), make([]byte, 24*n), 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			one := time.Since(t0) / iters
			t.Logf("%s, %d messages: atomic batch %v, plain publishes %v, one message %v", c.name, n, atomic, plain, one)
		}
		for _, depth := range []int{1, 4, 16, 64} {
			const total = 64
			t0 := time.Now()
			for round := range total / depth {
				var replies []chan *nats.Msg
				for b := range depth {
					ms := batch(s, fmt.Sprint("d", depth, "_", round, "_", b), 22)
					id := nuid.Next()
					ch := make(chan *nats.Msg, 1)
					inbox := nc.NewRespInbox()
					sub, err := nc.ChanSubscribe(inbox, ch)
					if err != nil {
						t.Fatal(err)
					}
					defer sub.Unsubscribe()
					for i, m := range ms {
						nm := nats.NewMsg(m.subj)
						nm.Data = m.data
						nm.Header["Nats-Batch-Id"] = []string{id}
						nm.Header["Nats-Batch-Sequence"] = []string{strconv.Itoa(i + 1)}
						if i == len(ms)-1 {
							nm.Header["Nats-Batch-Commit"] = []string{"1"}
							nm.Reply = inbox
						}
						if err := nc.PublishMsg(nm); err != nil {
							t.Fatal(err)
						}
					}
					replies = append(replies, ch)
				}
				for _, ch := range replies {
					select {
					case r := <-ch:
						var ack pubAck
						if err := json.Unmarshal(r.Data, &ack); err != nil || ack.Error != nil || ack.Count != 22 {
							t.Fatalf("batch: %s", r.Data)
						}
					case <-time.After(30 * time.Second):
						t.Fatal("no acknowledgement")
					}
				}
			}
			t.Logf("%s, atomic batches of 22, %d in flight: %v per batch", c.name, depth, time.Since(t0)/total)
		}
	}
}

// TestMeasureFanout measures what one message queued for 10 and for 100
// persistent sessions (one Enqueue, one commit, sessions that already
// have a head) adds to the stream, in bytes and messages, for a 64-byte
// and a 4 KiB payload. Set MQTTD_JSSTORE_MEASURE=1 to run it.
func TestMeasureFanout(t *testing.T) {
	if os.Getenv("MQTTD_JSSTORE_MEASURE") == "" {
		t.Skip("set MQTTD_JSSTORE_MEASURE=1 to measure")
	}
	ns := startNATS(t, t.TempDir(), -1)
	nc := connect(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64, 4096} {
		for _, n := range []int{10, 100} {
			prefix := fmt.Sprint("fan", size, "x", n)
			s := open(t, nc, Options{Prefix: prefix})
			state := func() (uint64, uint64) {
				st, err := js.Stream(context.Background(), prefix+"_store")
				if err != nil {
					t.Fatal(err)
				}
				info, err := st.Info(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return info.State.Msgs, info.State.Bytes
			}
			var ds []store.Delivery
			for i := range n {
				ds = append(ds, store.Delivery{ClientID: fmt.Sprint("sub-", i), QoS: 1})
			}
			// A first message, so that every session has its head.
			var b store.Batch
			b.Enqueue(&store.MessageRecord{Topic: "fan/0", Payload: make([]byte, size), QoS: 1}, slices.Clone(ds))
			if err := s.Commit(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			m0, b0 := state()
			b.Reset()
			b.Enqueue(&store.MessageRecord{Topic: "fan/1", Payload: make([]byte, size), QoS: 1}, slices.Clone(ds))
			if err := s.Commit(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			m1, b1 := state()
			t.Logf("payload %d B to %d sessions: +%d stream bytes (%.1f x the payload), +%d stream messages",
				size, n, b1-b0, float64(b1-b0)/float64(size), m1-m0)
		}
	}
}
