//go:build unix

package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// These tests run the binary on one store and restart it between writing
// and reading: after kill -9 (nothing flushed, nothing closed), after two
// kill -9 in a row (the second right after the first recovery), and after
// SIGTERM. storage.durability is the default, sync.

var restartModes = []struct {
	name    string
	restart func(b *brokerProc)
}{
	{"kill -9", func(b *brokerProc) { b.kill9(); b.start() }},
	{"two kill -9", func(b *brokerProc) { b.kill9(); b.start(); b.kill9(); b.start() }},
	{"SIGTERM", func(b *brokerProc) { b.term(); b.start() }},
}

// received is one message a test client got.
type received struct {
	topic, payload string
	qos            byte
}

// client311 connects an MQTT 3.1.1 client (clean session as asked) whose
// messages, those of restored subscriptions included, go to msgs. It
// returns the client and CONNACK's session present flag.
func client311(t *testing.T, addr, id string, clean bool, msgs chan<- received) (paho.Client, bool) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	if msgs != nil {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			msgs <- received{m.Topic(), string(m.Payload()), m.Qos()}
		})
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tok.Error())
	}
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

func waitToken(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v (timed out: %v)", what, tok.Error(), tok.Error() == nil)
	}
}

// nextMsg returns the next message on msgs, failing after a generous wait.
func nextMsg(t *testing.T, msgs <-chan received, waitingFor string) received {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(20 * time.Second):
		t.Fatalf("no message within 20s; waiting for %s", waitingFor)
	}
	return received{}
}

// Retained messages keep their latest value, and a cleared one stays
// cleared, across every kind of restart.
func TestPersistRetainedAcrossRestarts(t *testing.T) {
	for _, mode := range restartModes {
		t.Run(mode.name, func(t *testing.T) {
			b := newBrokerProc(t, "")
			b.start()
			pub, _ := client311(t, b.mqttAddr, "pub", true, nil)
			for _, m := range []struct{ topic, payload string }{
				{"r/latest", "v1"}, {"r/latest", "v2"}, {"r/cleared", "gone soon"}, {"r/cleared", ""}, {"r/other", "o"},
			} {
				waitToken(t, "retained publish", pub.Publish(m.topic, 1, true, m.payload))
			}
			mode.restart(b)

			msgs := make(chan received, 100)
			sub, _ := client311(t, b.mqttAddr, "sub", true, msgs)
			defer sub.Disconnect(100)
			waitToken(t, "subscribe", sub.Subscribe("r/#", 1, nil))
			pub, _ = client311(t, b.mqttAddr, "pub", true, nil)
			defer pub.Disconnect(100)
			// Retained messages are sent before anything published after
			// the SUBSCRIBE: the marker ends them.
			waitToken(t, "marker", pub.Publish("r/zz-end", 1, false, "end"))
			got := map[string]string{}
			for m := nextMsg(t, msgs, "r/zz-end"); m.topic != "r/zz-end"; m = nextMsg(t, msgs, "r/zz-end") {
				if _, dup := got[m.topic]; dup {
					t.Errorf("retained %s sent twice", m.topic)
				}
				got[m.topic] = m.payload
			}
			want := map[string]string{"r/latest": "v2", "r/other": "o"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("retained after restart = %v, want %v (latest values; r/cleared stays cleared)", got, want)
			}
		})
	}
}

// A persistent session keeps its subscription and the QoS 1 and QoS 2
// messages queued while it was offline: after the restart it resumes
// (session present), gets every one in order at its QoS with no QoS 2
// duplicate, and new messages reach it through the restored subscription
// without a new SUBSCRIBE. A clean session is not restored.
func TestPersistSessionsAndQueuesAcrossRestarts(t *testing.T) {
	const n = 50
	for _, mode := range restartModes {
		t.Run(mode.name, func(t *testing.T) {
			b := newBrokerProc(t, "")
			b.start()
			keeper, _ := client311(t, b.mqttAddr, "keeper", false, nil)
			waitToken(t, "subscribe", keeper.Subscribe("q/#", 2, nil))
			keeper.Disconnect(250)
			passer, _ := client311(t, b.mqttAddr, "passer", true, nil)
			waitToken(t, "subscribe", passer.Subscribe("q/#", 2, nil))

			pub, _ := client311(t, b.mqttAddr, "pub", true, nil)
			var want []received
			for i := range n {
				a := received{"q/1", fmt.Sprintf("a-%d", i), 1}
				c := received{"q/2", fmt.Sprintf("b-%d", i), 2}
				waitToken(t, "QoS 1 publish", pub.Publish(a.topic, 1, false, a.payload))
				waitToken(t, "QoS 2 publish", pub.Publish(c.topic, 2, false, c.payload))
				want = append(want, a, c)
			}
			mode.restart(b)

			msgs := make(chan received, 4*n)
			keeper, present := client311(t, b.mqttAddr, "keeper", false, msgs)
			defer keeper.Disconnect(100)
			if !present {
				t.Fatal("keeper: session present is 0 after the restart; its session was lost")
			}
			for i, w := range want {
				if got := nextMsg(t, msgs, w.payload); got != w {
					t.Fatalf("message %d after the restart = %+v, want %+v (in order, at its QoS, none missing or repeated)", i, got, w)
				}
			}
			pub, _ = client311(t, b.mqttAddr, "pub", true, nil)
			defer pub.Disconnect(100)
			waitToken(t, "publish after restart", pub.Publish("q/3", 1, false, "after"))
			if got := nextMsg(t, msgs, "after"); got != (received{"q/3", "after", 1}) {
				t.Errorf("after the queue, got %+v; want the new message through the restored subscription (a duplicate of a queued one is a defect)", got)
			}

			passer, present = client311(t, b.mqttAddr, "passer", false, nil)
			defer passer.Disconnect(100)
			if present {
				t.Error("passer's clean session was restored after the restart")
			}
		})
	}
}

// Under QoS 1 load, with a persistent subscriber connected, every message
// the broker acknowledged before kill -9 reaches the subscriber, before
// the kill or after the restart. Duplicates are allowed (QoS 1) and
// counted in the log.
func TestPersistQoS1LoadSurvivesKill9(t *testing.T) {
	const (
		publishers = 4
		perPub     = 3000 // each publisher's bound; the kill comes first
		killAfter  = 1500 // acknowledged messages, all publishers together
		window     = 32   // QoS 1 publishes in flight per publisher
	)
	b := newBrokerProc(t, "")
	b.start()

	var mu sync.Mutex
	seen := map[string]int{}
	onMsg := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[string(m.Payload())]++
		mu.Unlock()
	}
	o := paho.NewClientOptions().AddBroker("tcp://" + b.mqttAddr).SetClientID("load-sub").SetCleanSession(false).
		SetAutoReconnect(false).SetConnectRetry(false).SetDefaultPublishHandler(onMsg)
	sub := paho.NewClient(o)
	waitToken(t, "subscriber connect", sub.Connect())
	waitToken(t, "subscribe", sub.Subscribe("load/#", 1, nil))

	var ackedN atomic.Int64
	acked := make([][]string, publishers)
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for p := range publishers {
		c, _ := client311(t, b.mqttAddr, fmt.Sprintf("load-pub-%d", p), true, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			type sent struct {
				payload string
				tok     paho.Token
			}
			var inflight []sent
			settle := func(s sent) bool {
				if !s.tok.WaitTimeout(30*time.Second) || s.tok.Error() != nil {
					return false
				}
				acked[p] = append(acked[p], s.payload)
				if ackedN.Add(1) == killAfter {
					close(killed)
				}
				return true
			}
			for i := range perPub {
				payload := fmt.Sprintf("p%d-%d", p, i)
				inflight = append(inflight, sent{payload, c.Publish(fmt.Sprintf("load/%d", p), 1, false, payload)})
				if len(inflight) > window {
					if !settle(inflight[0]) {
						return
					}
					inflight = inflight[1:]
				}
			}
			for _, s := range inflight {
				if !settle(s) {
					return
				}
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d messages acknowledged in 60s", ackedN.Load())
	}
	// The publishes went through the store's write batches (the pipelined
	// publishes of one read share one, so there are fewer than messages).
	if n := metricValue(t, b.metrics(), "mqttd_store_write_batches_total"); n < 1 {
		t.Errorf("mqttd_store_write_batches_total = %v with %d messages acknowledged, want some", n, killAfter)
	}
	b.kill9()
	wg.Wait() // every publisher has seen its connection end
	sub.Disconnect(0)
	b.start()

	var all []string
	for _, a := range acked {
		all = append(all, a...)
	}
	sub = paho.NewClient(o)
	tok := sub.Connect()
	waitToken(t, "subscriber reconnect", tok)
	defer sub.Disconnect(100)
	if !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("the persistent subscriber's session was lost")
	}
	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		mu.Lock()
		for _, m := range all {
			if seen[m] == 0 {
				missing = append(missing, m)
			}
		}
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += max(n-1, 0)
	}
	total := len(seen)
	mu.Unlock()
	t.Logf("acknowledged before kill -9: %d; delivered (distinct): %d; duplicates: %d", len(all), total, dups)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged messages never delivered after the restart, e.g. %v", len(missing), missing[:min(len(missing), 10)])
	}
}

// metricValue is the value of the unlabelled series name in a /metrics text.
func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
