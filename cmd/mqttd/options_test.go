package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/testpki"
)

// The config defaults and the broker's agree, so `mqttd` with no file runs
// with the limits the broker documents.
func TestDefaultLimitsMatchBroker(t *testing.T) {
	opts := brokerOptions(ptr(config.Default()), nil)
	if opts.Limits != mqtt.DefaultLimits {
		t.Errorf("config defaults %+v\nbroker defaults %+v", opts.Limits, mqtt.DefaultLimits)
	}
}

func ptr[T any](v T) *T { return &v }

func TestBrokerOptions(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	crt, key := testpki.SelfSigned(t, dir, "srv")
	path := writeConfig(t, dir, `
name: n1
listeners:
  plain: {bind: "127.0.0.1:0"}
  ws: {type: ws, bind: "127.0.0.1:0"}
  secure: {bind: "127.0.0.1:0", tls: {cert: `+crt+`, key: `+key+`, client-ca: `+crt+`}}
limits: {max-packet-size: 64KiB, max-keep-alive: 300, session-expiry: 1h}
sys-interval: 0s
shutdown-grace: 3s
`)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := brokerOptions(cfg, nil)
	if opts.Name != "n1" || opts.SysInterval >= 0 ||
		opts.Limits.MaxPacketSize != 64<<10 || opts.Limits.MaxKeepAlive != 300 || opts.Limits.SessionExpiry != time.Hour {
		t.Errorf("options: %+v", opts)
	}
	if len(opts.Listeners) != 3 {
		t.Fatalf("listeners: %+v", opts.Listeners)
	}
	// Sorted by name: plain, secure, ws.
	p, s, w := opts.Listeners[0], opts.Listeners[1], opts.Listeners[2]
	if p.Name != "plain" || p.Type != "tcp" || p.TLS != nil {
		t.Errorf("plain: %+v", p)
	}
	if s.Name != "secure" || s.TLS == nil || s.TLS.MinVersion != tls.VersionTLS12 || s.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("secure: %+v", s)
	}
	if w.Name != "ws" || w.Type != "ws" || w.Path != "/mqtt" {
		t.Errorf("ws: %+v", w)
	}

	if got := opts.Limits.SlowSubscriberTimeout; got != 30*time.Second {
		t.Errorf("slow-subscriber-timeout default became %v, want 30s", got)
	}
	cfg.Limits.SlowSubscriberTimeout = 0 // never: the broker's "never" is negative, its 0 the default
	if got := brokerOptions(cfg, nil).Limits.SlowSubscriberTimeout; got >= 0 {
		t.Errorf("slow-subscriber-timeout 0 became %v, want negative (never)", got)
	}
	cfg.SysInterval = 30 * time.Second
	if got := brokerOptions(cfg, nil).SysInterval; got != 30*time.Second {
		t.Errorf("sys-interval 30s became %v", got)
	}
}

// isolate hides the machine's MQTTD_ variables and any mqttd.yaml in the
// working directory from the test.
func isolate(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.EnvPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	old := config.SearchPath
	config.SearchPath = []string{"mqttd.yaml"}
	t.Cleanup(func() { config.SearchPath = old })
}

func writeConfig(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "mqttd.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// limits.max-retained and -bytes 0 mean no bound; the broker's 0 means its
// default, so the mapping turns them negative.
func TestRetainedBoundsZeroIsUnbounded(t *testing.T) {
	c := config.Default()
	c.Limits.MaxRetained, c.Limits.MaxRetainedBytes = 0, 0
	if l := brokerOptions(&c, nil).Limits; l.MaxRetained >= 0 || l.MaxRetainedBytes >= 0 {
		t.Fatalf("0 in config mapped to %d, %d; want negative (no bound)", l.MaxRetained, l.MaxRetainedBytes)
	}
	c.Limits.MaxRetained, c.Limits.MaxRetainedBytes = 5, 7*config.KiB
	if l := brokerOptions(&c, nil).Limits; l.MaxRetained != 5 || l.MaxRetainedBytes != 7*1024 {
		t.Fatalf("mapped to %d, %d; want 5, 7168", l.MaxRetained, l.MaxRetainedBytes)
	}
}
