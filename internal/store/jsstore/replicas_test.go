package jsstore

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/storetest"
)

// startCluster3 runs three embedded nats-servers with JetStream, routed
// into one cluster.
func startCluster3(t testing.TB) []*server.Server {
	t.Helper()
	var ports []int
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i, p := range ports {
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprint("n", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: p},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
	}
	return servers
}

// openReplicated opens a store with three replicas on the cluster through
// server i, waiting for JetStream's meta leader to be elected.
func openReplicated(t testing.TB, servers []*server.Server, i int, prefix string) (store.Store, error) {
	nc := connect(t, servers[i].ClientURL())
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := Open(context.Background(), nc, Options{Prefix: prefix, Replicas: 3, Logger: quiet()})
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplicated: the model test on a stream with three replicas, each
// reopening through another server of the cluster, so that reads are
// answered by leader and followers alike.
func TestReplicated(t *testing.T) {
	servers := startCluster3(t)
	cfg := storetest.Config{Seeds: 20, Ops: 60, Budget: 10 * time.Second, MinSeeds: 1}
	if testing.Short() {
		cfg.Seeds = 1
	}
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		prefix, n := fmt.Sprint("r", seed), 0
		return func() (store.Store, error) {
			n++
			return openReplicated(t, servers, n%3, prefix)
		}
	})
}
