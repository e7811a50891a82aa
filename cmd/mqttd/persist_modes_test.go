//go:build unix

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// retainedAfterRestart subscribes to r/# and returns the retained
// messages, ended by a marker published after the SUBSCRIBE.
func retainedAfterRestart(t *testing.T, b *brokerProc) map[string]string {
	t.Helper()
	msgs := make(chan received, 100)
	sub, _ := client311(t, b.mqttAddr, "check", true, msgs)
	defer sub.Disconnect(100)
	waitToken(t, "subscribe", sub.Subscribe("r/#", 1, nil))
	pub, _ := client311(t, b.mqttAddr, "marker", true, nil)
	defer pub.Disconnect(100)
	waitToken(t, "marker", pub.Publish("r/zz-end", 1, false, "end"))
	got := map[string]string{}
	for m := nextMsg(t, msgs, "r/zz-end"); m.topic != "r/zz-end"; m = nextMsg(t, msgs, "r/zz-end") {
		got[m.topic] = m.payload
	}
	return got
}

// With durability interval or none, a clean stop (SIGTERM) still loses
// nothing: the store is fsynced when it closes. With interval, what an
// fsync of the log covered survives kill -9 (the loss window is what came
// after the last fsync).
func TestPersistDurabilityModes(t *testing.T) {
	for _, mode := range []string{"interval", "none"} {
		t.Run(mode+"/SIGTERM", func(t *testing.T) {
			b := newBrokerProc(t, fmt.Sprintf("storage: {durability: %s, sync-interval: 1h}\n", mode))
			b.start()
			pub, _ := client311(t, b.mqttAddr, "pub", true, nil)
			waitToken(t, "publish", pub.Publish("r/a", 1, true, "kept"))
			pub.Disconnect(100)
			b.term()
			b.start()
			if got := retainedAfterRestart(t, b); got["r/a"] != "kept" {
				t.Errorf("durability %s: retained after SIGTERM = %v, want r/a kept", mode, got)
			}
		})
	}
	t.Run("interval/kill -9 after an fsync", func(t *testing.T) {
		b := newBrokerProc(t, "storage: {durability: interval, sync-interval: 20ms}\n")
		b.start()
		// The publish is the only write after this count: the store fsyncs
		// the log only when something was written since the last fsync,
		// so the next fsync is the one that covers it.
		before := metricValue(t, b.metrics(), "mqttd_store_fsync_seconds_count")
		pub, _ := client311(t, b.mqttAddr, "pub", true, nil)
		waitToken(t, "publish", pub.Publish("r/a", 1, true, "kept"))
		deadline := time.Now().Add(20 * time.Second)
		for metricValue(t, b.metrics(), "mqttd_store_fsync_seconds_count") <= before {
			if time.Now().After(deadline) {
				t.Fatal("no fsync of the log within 20s with sync-interval 20ms")
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.kill9()
		b.start()
		if got := retainedAfterRestart(t, b); got["r/a"] != "kept" {
			t.Errorf("retained after an fsync and kill -9 = %v, want r/a kept", got)
		}
		if !strings.Contains(b.logs(), "durability=interval") {
			t.Errorf("the log does not say the durability mode")
		}
	})
}
