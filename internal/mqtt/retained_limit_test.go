package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// lockedBuffer is a log sink safe for the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// retainPub publishes a retained QoS 1 message with a paho v5 client and
// fails unless the PUBACK is a success: a message over the retained bounds
// still went out to the subscribers, so the publisher is not told to resend.
func retainPub(t *testing.T, c *pahoV5Client, topic, payload string) {
	t.Helper()
	r := c.pub(&pahov5.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true})
	if r == nil || r.ReasonCode >= 0x80 { // 0x00, or 0x10 no matching subscribers
		t.Fatalf("PUBACK for %s = %+v, want success", topic, r)
	}
}

// collectRetained subscribes a fresh v5 client to filter and returns the
// retained messages it is sent, by topic.
func collectRetained(t *testing.T, addr, id, filter string, n int) map[string]string {
	t.Helper()
	c := pahoV5(t, addr, &pahov5.Connect{ClientID: id, CleanStart: true}, nil)
	c.sub(0, pahov5.SubscribeOptions{Topic: filter, QoS: 1})
	got := map[string]string{}
	for range n {
		m := c.recv(5 * time.Second)
		got[m.Topic] = string(m.Payload)
	}
	c.none(200 * time.Millisecond)
	c.stop()
	return got
}

// limits.max-retained with the store: a new retained topic beyond the
// bound is delivered and acknowledged but not retained, counted and
// logged; replacing and clearing are always allowed; after a restart the
// recovered messages count against the bound.
func TestMaxRetainedCountAcrossRestart(t *testing.T) {
	logs := &lockedBuffer{}
	pb := startPersistent(t, func(o *Options) {
		o.Limits.MaxRetained = 2
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	live := pahoV5(t, pb.addr, &pahov5.Connect{ClientID: "live", CleanStart: true}, nil)
	live.sub(0, pahov5.SubscribeOptions{Topic: "lim/#", QoS: 1})
	pub := pahoV5(t, pb.addr, &pahov5.Connect{ClientID: "pub", CleanStart: true}, nil)

	retainPub(t, pub, "lim/a", "a1")
	retainPub(t, pub, "lim/b", "b1")
	retainPub(t, pub, "lim/c", "c1") // over the bound: routed, not retained
	for _, want := range []string{"a1", "b1", "c1"} {
		if m := live.recv(5 * time.Second); string(m.Payload) != want {
			t.Fatalf("live subscriber got %s %q, want %q", m.Topic, m.Payload, want)
		}
	}
	st := pb.Stats()
	if st.Retained != 2 || st.RetainedRefused != 1 {
		t.Fatalf("retained %d refused %d, want 2 and 1", st.Retained, st.RetainedRefused)
	}
	if !strings.Contains(logs.String(), "retained message not kept") || !strings.Contains(logs.String(), "lim/c") {
		t.Fatalf("no warning for the refused retained message; log:\n%s", logs)
	}

	retainPub(t, pub, "lim/a", "a2 replaces a1 at the bound")
	retainPub(t, pub, "lim/b", "") // clearing frees a slot
	retainPub(t, pub, "lim/c", "c2")
	if st := pb.Stats(); st.Retained != 2 || st.RetainedRefused != 1 {
		t.Fatalf("after replace/clear: retained %d refused %d, want 2 and 1", st.Retained, st.RetainedRefused)
	}

	live.stop()
	pub.stop()
	pb.restart()
	got := collectRetained(t, pb.addr, "after", "lim/#", 2)
	if got["lim/a"] != "a2 replaces a1 at the bound" || got["lim/c"] != "c2" {
		t.Fatalf("retained after restart: %v", got)
	}
	pub = pahoV5(t, pb.addr, &pahov5.Connect{ClientID: "pub2", CleanStart: true}, nil)
	retainPub(t, pub, "lim/d", "d1") // the recovered two fill the bound
	if st := pb.Stats(); st.Retained != 2 || st.RetainedRefused != 1 {
		t.Fatalf("after restart: retained %d refused %d, want 2 and 1", st.Retained, st.RetainedRefused)
	}
}

// limits.max-retained-bytes in memory with a 3.1.1 client: topic and
// payload bytes count; a replacement may grow past the bound.
func TestMaxRetainedBytes(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxRetainedBytes = 100 })
	c := pahoClient(t, tb.addr, "bytes-pub", nil)
	pub := func(topic string, n int) {
		t.Helper()
		waitToken(t, "publish "+topic, c.Publish(topic, 1, true, strings.Repeat("x", n)))
	}
	pub("b/1", 60) // 63 bytes
	pub("b/2", 40) // 63+43 > 100: refused
	if st := tb.Stats(); st.Retained != 1 || st.RetainedBytes != 63 || st.RetainedRefused != 1 {
		t.Fatalf("retained %d (%d B) refused %d, want 1 (63 B) and 1", st.Retained, st.RetainedBytes, st.RetainedRefused)
	}
	pub("b/1", 98) // a replacement is allowed even past the bound: 101 B
	pub("b/3", 1)  // but no new topic then
	if st := tb.Stats(); st.Retained != 1 || st.RetainedBytes != 101 || st.RetainedRefused != 2 {
		t.Fatalf("retained %d (%d B) refused %d, want 1 (101 B) and 2", st.Retained, st.RetainedBytes, st.RetainedRefused)
	}
	waitToken(t, "clear b/1", c.Publish("b/1", 1, true, ""))
	pub("b/2", 40)
	if st := tb.Stats(); st.Retained != 1 || st.RetainedBytes != 43 {
		t.Fatalf("after clear: retained %d (%d B), want 1 (43 B)", st.Retained, st.RetainedBytes)
	}
}

// Negative bounds mean none: a third topic is kept.
func TestMaxRetainedUnbounded(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxRetained, o.Limits.MaxRetainedBytes = -1, -1 })
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "unb", CleanStart: true}, nil)
	for _, topic := range []string{"u/1", "u/2", "u/3"} {
		retainPub(t, pub, topic, strings.Repeat("p", 1000))
	}
	if st := tb.Stats(); st.Retained != 3 || st.RetainedRefused != 0 {
		t.Fatalf("retained %d refused %d, want 3 and 0", st.Retained, st.RetainedRefused)
	}
}
