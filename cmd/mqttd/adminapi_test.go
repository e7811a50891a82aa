//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
)

// The admin API as mqttd wires it: admin.token from ${VAR}, the built-in
// plugins listed with their types and capabilities, a kick that reaches a
// real client.
func TestAdminAPIWiring(t *testing.T) {
	isolate(t)
	t.Setenv("TEST_ADMIN_TOKEN", "tok-123")
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", passwdLine(t, "alice", "pw1"))
	write("acl.conf", "user alice\ntopic readwrite sensors/#\n")
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q, token: "${TEST_ADMIN_TOKEN}"}
shutdown-grace: 2s
plugins:
  pw: {type: password-file, file: passwd}
  acl: {type: acl-file, file: acl.conf}
auth: {allow-anonymous: false, plugins: [pw]}
topic-check: {enable: true, plugins: [acl]}
`, mqttAddr, adminAddr))
	serveUntilCleanup(t, cfg, adminAddr)

	call := func(method, path, token string, want int, out any) {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, "http://"+adminAddr+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		}
	}
	call("GET", "/api/v1/plugins", "", http.StatusUnauthorized, nil)
	call("GET", "/api/v1/plugins", "${TEST_ADMIN_TOKEN}", http.StatusUnauthorized, nil)
	var pl adminapi.PluginList
	call("GET", "/api/v1/plugins", "tok-123", http.StatusOK, &pl)
	if len(pl.Items) != 2 || pl.Items[0].Alias != "acl" || pl.Items[0].Type != "acl-file" ||
		fmt.Sprint(pl.Items[0].Capabilities) != "[topic_filtering]" || fmt.Sprint(pl.Items[1].Capabilities) != "[authenticate]" {
		t.Fatalf("plugins = %+v", pl)
	}
	// The older GET /plugins lists the built-ins too, with type and
	// capabilities (it listed HTTP plugins only).
	var legacy []struct {
		Alias, Type  string
		Capabilities []string
	}
	call("GET", "/plugins", "tok-123", http.StatusOK, &legacy)
	if len(legacy) != 2 || legacy[0].Alias != "acl" || legacy[0].Type != "acl-file" ||
		fmt.Sprint(legacy[0].Capabilities) != "[topic_filtering]" || legacy[1].Type != "password-file" {
		t.Fatalf("GET /plugins = %+v", legacy)
	}

	lost := make(chan struct{})
	c, err := connectAs(mqttAddr, "alice-1", "alice", "pw1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	go func() {
		for c.IsConnectionOpen() {
			time.Sleep(10 * time.Millisecond)
		}
		close(lost)
	}()
	var list adminapi.ClientList
	call("GET", "/api/v1/clients?q=alice", "tok-123", http.StatusOK, &list)
	if list.Total != 1 || list.Items[0].ClientID != "alice-1" {
		t.Fatalf("clients = %+v", list)
	}
	var kick adminapi.KickResult
	call("POST", "/api/v1/clients/alice-1/kick", "tok-123", http.StatusOK, &kick)
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("alice-1 was not disconnected")
	}
	call("GET", "/healthz", "", http.StatusOK, nil)
	call("GET", "/metrics", "", http.StatusOK, nil)
}
