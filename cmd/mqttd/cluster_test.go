package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsOn starts an embedded nats-server with JetStream on addr.
func natsOn(t *testing.T, addr, dir string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	s, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// With cluster.nats set and NATS down, mqttd waits and says so; once NATS
// is up it starts and /readyz is 200; NATS lost makes /readyz 503 until it
// is back. A second mqttd with the same name is refused with a clear
// message.
func TestClusterStartAndReadiness(t *testing.T) {
	isolate(t)
	natsAddr, mqttAddr, adminAddr := freePort(t), freePort(t), freePort(t)
	storeDir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
name: node-a
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
cluster:
  nats: ["nats://%s"]
  node-lease: 1s
`, mqttAddr, adminAddr, natsAddr))
	ctx, cancel := context.WithCancelCause(context.Background())
	errb := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", cfg}, &bytes.Buffer{}, errb) }()
	t.Cleanup(func() {
		cancel(fmt.Errorf("test over"))
		if code := <-done; code != 0 {
			t.Errorf("exit %d\n%s", code, errb.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(errb.String(), "NATS not reachable") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about NATS being down\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns := natsOn(t, natsAddr, storeDir)
	waitReady(t, "http://"+adminAddr, done, errb)
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "mqttd_cluster_connected 1") {
		t.Errorf("/metrics has no mqttd_cluster_connected 1")
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	waitReady(t, "http://"+adminAddr, done, errb, "not connected to NATS")
	natsOn(t, natsAddr, storeDir)
	waitReady(t, "http://"+adminAddr, done, errb)

	dup := writeConfig(t, t.TempDir(), fmt.Sprintf(`
name: node-a
listeners:
  default: {bind: %q}
admin: {bind: ""}
cluster:
  nats: ["nats://%s"]
  node-lease: 1s
`, freePort(t), natsAddr))
	var out syncBuffer
	code := run(context.Background(), []string{"--config", dup}, &bytes.Buffer{}, &out)
	if code == 0 || !strings.Contains(out.String(), `another node named \"node-a\" is running`) {
		t.Fatalf("second node-a: exit %d\n%s", code, out.String())
	}
}
