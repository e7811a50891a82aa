//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// storage.type jetstream: a persistent session and the messages queued
// for it while offline live in the cluster's JetStream, not on the node:
// the node restarts on an empty working directory and the client finds
// them there.
func TestJetStreamStoreAcrossRestart(t *testing.T) {
	isolate(t)
	natsAddr, mqttAddr, adminAddr := freePort(t), freePort(t), freePort(t)
	natsOn(t, natsAddr, t.TempDir())
	config := func() string {
		return writeConfig(t, t.TempDir(), fmt.Sprintf(`
name: node-a
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 1s
storage: {type: jetstream, dir: %q}
cluster:
  nats: ["nats://%s"]
  node-lease: 1s
`, mqttAddr, adminAddr, t.TempDir(), natsAddr))
	}
	start := func() (stop func()) {
		ctx, cancel := context.WithCancelCause(context.Background())
		errb := &syncBuffer{}
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"--config", config()}, &bytes.Buffer{}, errb) }()
		waitReady(t, "http://"+adminAddr, done, errb)
		return func() {
			cancel(fmt.Errorf("restart"))
			if code := <-done; code != 0 {
				t.Fatalf("exit %d\n%s", code, errb.String())
			}
		}
	}

	stop := start()
	sub, _ := client311(t, mqttAddr, "sub", false, nil)
	waitToken(t, "subscribe", sub.Subscribe("t/#", 1, nil))
	sub.Disconnect(100)
	pub, _ := client311(t, mqttAddr, "pub", true, nil)
	for i := range 3 {
		waitToken(t, "publish", pub.Publish("t/1", 1, false, fmt.Sprint("m", i)))
	}
	pub.Disconnect(100)
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "mqttd_store_jetstream_commit_failures_total 0") {
		t.Errorf("/metrics has no mqttd_store_jetstream_commit_failures_total 0")
	}
	stop()

	stop = start()
	defer stop()
	msgs := make(chan received, 10)
	sub, present := client311(t, mqttAddr, "sub", false, msgs)
	defer sub.Disconnect(100)
	if !present {
		t.Fatal("session not present after the restart")
	}
	var got []string
	for range 3 {
		got = append(got, nextMsg(t, msgs, "a queued message").payload)
	}
	if !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Fatalf("queued messages %q", got)
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
}
