package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClusterDefaultsAndPaths(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "mqttd.yaml", "name: node-1\ncluster:\n  nats: [nats://127.0.0.1:4222, tls://n2:4222]\n  credentials: secrets/node.creds\n")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if !cl.Enabled() || len(cl.NATS) != 2 || cl.Replicas != 1 || cl.Prefix != "mqttd" || cl.NodeLease != 10*time.Second {
		t.Errorf("cluster = %+v, want two URLs and the defaults", cl)
	}
	if want := filepath.Join(dir, "secrets/node.creds"); cl.Credentials != want {
		t.Errorf("credentials = %q, want %q (relative to the config file)", cl.Credentials, want)
	}
	if Default().Cluster.Enabled() {
		t.Error("the default configuration is a cluster; want a single node")
	}
}

func TestClusterErrors(t *testing.T) {
	isolate(t)
	for _, tc := range []struct{ content, want string }{
		{"cluster:\n  nats: [http://x:4222]\n", `cluster.nats: "http://x:4222" is not a NATS URL`},
		{"cluster:\n  prefix: a.b\n", `cluster.prefix: "a.b" is not a prefix`},
		{"cluster:\n  replicas: 7\n", `cluster.replicas: 7 is out of range (use 1 to 5)`},
		{"cluster:\n  node-lease: 10ms\n", `cluster.node-lease: 10ms is too short`},
		{"cluster:\n  tls:\n    cert: c.pem\n", `cluster.tls: cert and key go together`},
		{"name: a.b\ncluster:\n  nats: [nats://x:4222]\n", `name: "a.b" cannot name a cluster node`},
	} {
		path := writeFile(t, t.TempDir(), "mqttd.yaml", tc.content)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.content, err, tc.want)
		}
	}
}
