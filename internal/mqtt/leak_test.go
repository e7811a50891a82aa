package mqtt

import (
	"fmt"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"go.uber.org/goleak"
)

// After a broker has served every kind of connection end (graceful, QoS
// 0/1/2 traffic, malformed input, takeover, keep-alive expiry, WebSocket)
// and been closed, none of its goroutines remain (docs/design.md §5: no leaked
// goroutine). Goroutines that existed before the test (earlier tests'
// stragglers, the test runner) are ignored by identity; every client this
// test opens is closed, so nothing else needs ignoring.
func TestNoGoroutineLeak(t *testing.T) {
	if os.Getenv("MQTTD_TEST_STORE") != "" {
		t.Skip("the harness's store outlives the broker until cleanup")
	}
	before := goleak.IgnoreCurrent()
	tb := startBroker(t, func(o *Options) {
		o.Listeners = append(o.Listeners, ListenerConfig{Name: "ws", Type: "ws", Bind: "127.0.0.1:0"})
		o.SysInterval = 50 * time.Millisecond
	})
	var raws []*rawClient
	raw := func(id string, keepAlive uint16) *rawClient {
		c := dialRaw(t, tb.addr)
		raws = append(raws, c)
		if id != "" {
			if ack := c.connect(id, true, keepAlive); ack.ReasonCode != 0 {
				t.Fatalf("%s refused", id)
			}
		}
		return c
	}

	// paho over TCP and WebSocket, QoS 0/1/2 both ways.
	got := make(chan string, 16)
	var pahos []paho.Client
	for _, url := range []string{"tcp://" + tb.addr, "ws://" + tb.Addr("ws").String() + "/mqtt"} {
		c, _ := pahoConnect(t, url, "leak-"+url[:2], nil)
		pahos = append(pahos, c)
	}
	waitToken(t, "subscribe", pahos[1].Subscribe("leak/#", 2, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }))
	for q := byte(0); q <= 2; q++ {
		waitToken(t, "publish", pahos[0].Publish(fmt.Sprintf("leak/%d", q), q, q == 1, fmt.Sprint(q)))
	}
	for range 3 {
		select {
		case <-got:
		case <-time.After(3 * time.Second):
			t.Fatal("paho message lost")
		}
	}

	// Raw QoS 2 inbound left half done, a QoS 1 delivery never acknowledged.
	q := raw("leak-raw", 0)
	q.subscribe(1, "leakq", 1)
	waitToken(t, "publish", pahos[0].Publish("leakq", 1, false, "unacked"))
	q.expectPublish(2 * time.Second)
	q.send(&packets.Publish{Topic: "leakraw", Payload: []byte("x"), QoS: 2, PacketID: 3})
	q.expect(packets.PUBREC, 3)

	// Malformed input after CONNECT, and garbage instead of CONNECT.
	bad := raw("leak-bad", 0)
	bad.write([]byte{0x30, 5, 0, 3, 'a', '/', '#'})
	bad.expectClosed(2 * time.Second)
	junk := raw("", 0)
	junk.write([]byte("GET / HTTP/1.1\r\n\r\n"))
	junk.expectClosed(2 * time.Second)

	// Takeover.
	old := raw("leak-same", 0)
	raw("leak-same", 0)
	old.expectClosed(2 * time.Second)

	// Keep-alive expiry (1.5 s).
	silent := raw("leak-silent", 1)
	silent.expectClosed(3 * time.Second)

	// A persistent session left offline with a queue.
	p := raw("", 0)
	p.mustConnect("leak-persist", false)
	p.subscribe(1, "leakp/#", 1)
	p.disconnect()
	waitFor(t, "session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	waitToken(t, "publish", pahos[0].Publish("leakp/queued", 1, false, "q"))
	waitFor(t, "queued", func() bool { return tb.Stats().Queued == 1 })

	for _, c := range pahos {
		c.Disconnect(100)
	}
	if err := closeBroker(t, tb.Broker, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range raws {
		c.conn.Close()
	}
	goleak.VerifyNone(t, before)
}
