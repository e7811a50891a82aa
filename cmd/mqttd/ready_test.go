package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// /readyz says not ready until every HTTP auth plugin has answered once: a
// load balancer must not send clients to a broker that would refuse them
// all. The broker itself starts while the plugin is down.
func TestReadyWaitsForAuthPlugin(t *testing.T) {
	isolate(t)
	pluginAddr, mqttAddr, adminAddr := freePort(t), freePort(t), freePort(t)
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
plugins:
  acct: {url: "http://%s", timeout: 200ms}
auth: {allow-anonymous: false, plugins: [acct]}
`, mqttAddr, adminAddr, pluginAddr))
	errb := serveUntilCleanup(t, cfg, adminAddr, "auth plugins not answering yet: acct")

	if ack := mqttConnect(t, mqttAddr); ack[3] != 0x05 {
		t.Fatalf("CONNACK % x while the plugin is down, want refused (0x05)", ack)
	}
	ln, err := net.Listen("tcp", pluginAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/manifest" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent) // allow
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the plugin came up\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ack := mqttConnect(t, mqttAddr); ack[3] != 0 {
		t.Fatalf("CONNACK % x after the plugin came up, want accepted", ack)
	}
}
