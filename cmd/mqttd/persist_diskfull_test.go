//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// smallFS mounts a tmpfs of size bytes on a fresh directory, or skips the
// test: it needs root and a kernel that lets it mount.
func smallFS(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a real full disk)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): the full-disk test needs it", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillUp writes path until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}

// waitMetric polls /metrics until it has the line want.
func waitMetric(t *testing.T, b *brokerProc, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.metrics(), "\n"+want+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never had %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mqttd on a real file system that fills up and then frees space: while
// full, QoS 1 publishes for persistent sessions are refused (MQTT 5 hears
// 0x97, a 3.1.1 publisher is disconnected) while QoS 0 keeps flowing; once
// space returns the store reopens itself, without a restart, and the same
// publisher is acknowledged again; after a restart the persistent session
// holds every message that was acknowledged, and none that was refused.
func TestBinaryDiskFullRecovers(t *testing.T) {
	mnt := smallFS(t, 32<<20)
	b := newBrokerProc(t, fmt.Sprintf("storage: {dir: %q, retry-interval: 100ms}\n", filepath.Join(mnt, "store")))
	b.start()
	ctx := context.Background()

	sub, _, _ := v5Client(t, b.mqttAddr, "df-sub", 3600, true)
	if _, err := sub.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "df/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(&pahov5.Disconnect{})
	live, liveMsgs, _ := v5Client(t, b.mqttAddr, "df-live", 0, true)
	if _, err := live.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "live/#", QoS: 0}}}); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := v5Client(t, b.mqttAddr, "df-pub", 0, true)

	fillUp(t, filepath.Join(mnt, "filler"))
	// The log has room preallocated: publish until a write reaches the
	// full disk. Each acknowledged one must survive.
	payload := bytes.Repeat([]byte("x"), 100<<10)
	var acked []string
	refused := false
	for i := 0; i < 400 && !refused; i++ {
		p := fmt.Sprintf("m%03d", i)
		resp, err := pub.Publish(ctx, &pahov5.Publish{Topic: "df/a", QoS: 1, Payload: append([]byte(p), payload...)})
		switch {
		case err == nil:
			acked = append(acked, p)
		case resp != nil && resp.ReasonCode == 0x97:
			refused = true
		default:
			t.Fatalf("publish %s: %v", p, err)
		}
	}
	if !refused {
		t.Fatalf("40 MB of publishes on a full 32 MB file system were all acknowledged")
	}
	waitMetric(t, b, "mqttd_store_healthy 0")
	// Still refused, and a 3.1.1 publisher is disconnected.
	if resp, err := pub.Publish(ctx, &pahov5.Publish{Topic: "df/a", QoS: 1, Payload: []byte("refused")}); err == nil || resp == nil || resp.ReasonCode != 0x97 {
		t.Fatalf("publish on a full disk: %v %+v", err, resp)
	}
	lost := make(chan struct{})
	v3 := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + b.mqttAddr).SetClientID("df-pub3").
		SetAutoReconnect(false).SetConnectionLostHandler(func(pahov3.Client, error) { close(lost) }))
	if tok := v3.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 connect: %v", tok.Error())
	}
	v3.Publish("df/a", 1, false, "refused3")
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("3.1.1 publisher still connected after a publish the store refused")
	}
	// QoS 0 needs no store.
	if _, err := pub.Publish(ctx, &pahov5.Publish{Topic: "live/x", Payload: []byte("q0")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-liveMsgs:
		if string(m.Payload) != "q0" {
			t.Fatalf("live subscriber got %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("QoS 0 stopped flowing while the disk was full")
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, b, "mqttd_store_healthy 1")
	waitMetric(t, b, "mqttd_store_recoveries_total 1")
	if _, err := pub.Publish(ctx, &pahov5.Publish{Topic: "df/a", QoS: 1, Payload: []byte("after")}); err != nil {
		t.Fatalf("publish once space returned: %v", err)
	}
	acked = append(acked, "after")
	// One line when it fails, one when it recovers; none per refusal.
	logs := b.logs()
	if strings.Count(logs, "store: write failed") != 1 || strings.Count(logs, "store: writable again") != 1 || strings.Contains(logs, "store write failed") {
		t.Fatalf("want the failure and the recovery logged once each, and no refusal:\n%s", tail(logs, 30))
	}

	b.term()
	b.start()
	sub, msgs, ack := v5Client(t, b.mqttAddr, "df-sub", 3600, false)
	defer sub.Disconnect(&pahov5.Disconnect{})
	if !ack.SessionPresent {
		t.Fatal("session not present after the restart")
	}
	for i, want := range acked {
		select {
		case m := <-msgs:
			if got := string(m.Payload[:min(len(want), len(m.Payload))]); got != want {
				// A refused publish may be found again only if its bytes
				// reached the log; on tmpfs a failed write leaves none.
				t.Fatalf("message %d is %q, want %q", i+1, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after the restart got %d of the %d acknowledged messages", i, len(acked))
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("a message beyond the acknowledged ones: %.10q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}
