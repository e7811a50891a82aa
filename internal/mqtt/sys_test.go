package mqtt

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// sysTopics are the $SYS/broker/... topics every interval must carry.
var sysTopics = []string{
	"version", "uptime", "clients/connected", "messages/received",
	"bytes/received", "subscriptions/count", "retained/count",
}

// With SysInterval = 100ms a $SYS/broker/# subscriber receives the broker's
// statistics, and their values follow the broker: clients/connected is the
// number of connected clients, messages/received counts the publishes, the
// uptime advances.
func TestSysTopicsPublished(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.SysInterval = 100 * time.Millisecond })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("sys-watch", true)
	sub.subscribe(1, "$SYS/broker/#", 0)
	a := dialRaw(t, tb.addr)
	a.mustConnect("sys-a", true)
	b := dialRaw(t, tb.addr)
	b.mustConnect("sys-b", true)
	gone := dialRaw(t, tb.addr) // counts in clients/total, not clients/connected
	gone.mustConnect("sys-gone", true)
	gone.disconnect()
	for i := range 3 {
		a.send(&packets.Publish{Topic: "sys/t", Payload: []byte("hello"), QoS: 1, PacketID: uint16(i + 1)})
		a.expect(packets.PUBACK, uint16(i+1))
	}

	latest := map[string]string{}
	num := func(k string) int64 {
		v, err := strconv.ParseInt(latest[k], 10, 64)
		if err != nil {
			return -1
		}
		return v
	}
	done := func() bool {
		for _, k := range sysTopics {
			if _, ok := latest[k]; !ok {
				return false
			}
		}
		return latest["version"] == Version &&
			num("clients/connected") == 3 &&
			num("messages/received") == 3 &&
			num("bytes/received") > 0 &&
			num("subscriptions/count") == 1 &&
			num("retained/count") == 16 && // the $SYS topics themselves
			num("uptime") >= 1
	}
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("$SYS values never settled: %q", latest)
		}
		m := sub.expectPublish(2 * time.Second)
		k, ok := strings.CutPrefix(m.Topic, "$SYS/broker/")
		if !ok {
			t.Fatalf("$SYS/broker/# got %q", m.Topic)
		}
		latest[k] = string(m.Payload)
	}
	// Bytes received covers at least the four CONNECTs and
	// three PUBLISHes the broker read.
	if got := num("bytes/received"); got < 4*14+3*15 {
		t.Fatalf("bytes/received = %d: too small for the traffic sent", got)
	}
}

// A subscriber arriving between two intervals gets the latest $SYS values at
// once, as retained messages ([MQTT-3.3.1-6], RETAIN set [MQTT-3.3.1-8]).
func TestSysRetainedForLateSubscriber(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.SysInterval = 100 * time.Millisecond })
	waitFor(t, "first $SYS round", func() bool { return tb.Stats().Retained >= int64(len(sysTopics)) })
	late := dialRaw(t, tb.addr)
	late.mustConnect("sys-late", true)
	late.subscribe(1, "$SYS/broker/#", 0)
	retained := map[string]string{}
	deadline := time.Now().Add(3 * time.Second)
	for {
		missing := ""
		for _, k := range sysTopics {
			if _, ok := retained[k]; !ok {
				missing = k
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retained $SYS/broker/%s; got %q", missing, retained)
		}
		m := late.expectPublish(2 * time.Second)
		if m.Retain {
			retained[strings.TrimPrefix(m.Topic, "$SYS/broker/")] = string(m.Payload)
		}
	}
	if retained["version"] != Version {
		t.Fatalf("retained version %q", retained["version"])
	}
	if n, err := strconv.Atoi(retained["clients/connected"]); err != nil || n < 0 || n > 1 {
		t.Fatalf("retained clients/connected %q", retained["clients/connected"])
	}
}
