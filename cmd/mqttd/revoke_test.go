//go:build unix

package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The "revoke now" recipe end to end: mqttd with examples/hooks-node as its
// auth plugin (a real node process), alice connected twice, then hooks-node's
// disable-user CLI. Both of alice's connections close at once, her next
// CONNECT is refused although the broker had cached her allow, and
// enable-user lets her back in.
func TestRevokeNowWithHooksNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: this test runs examples/hooks-node (Node 20+)")
	}
	hooksDir, err := filepath.Abs("../../examples/hooks-node")
	if err != nil {
		t.Fatal(err)
	}
	isolate(t)
	dir := t.TempDir()
	usersFile := filepath.Join(dir, "users.txt")
	add := exec.Command(node, "bin/add-user.js", usersFile, "alice")
	add.Dir, add.Stdin = hooksDir, strings.NewReader("pw1\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("add-user: %v\n%s", err, out)
	}

	const secret, hooksToken, adminToken = "plugin-secret", "hooks-admin", "broker-admin"
	mqttAddr, adminAddr, hooksAddr := freePort(t), freePort(t), freePort(t)
	hooksURL := "http://" + hooksAddr
	_, hooksPort, _ := strings.Cut(hooksAddr, ":")
	hooksLog := &syncBuffer{}
	hooks := exec.Command(node, "src/main.js")
	hooks.Dir = hooksDir
	hooks.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOST=127.0.0.1", "PORT=" + hooksPort, "HOOKS_SECRET=" + secret,
		"USERS_FILE=" + usersFile, "DISABLED_FILE=" + filepath.Join(dir, "disabled.txt"), "EVENTS=",
		"HOOKS_ADMIN_TOKEN=" + hooksToken, "MQTTD_ADMIN_URL=http://" + adminAddr, "MQTTD_ADMIN_TOKEN=" + adminToken,
	}
	hooks.Stderr = hooksLog
	if err := hooks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hooks.Process.Signal(syscall.SIGTERM)
		hooks.Wait()
		if t.Failed() {
			t.Logf("hooks-node stderr:\n%s", hooksLog.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get(hooksURL + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hooks-node did not answer /healthz within 15s\n%s", hooksLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	cfg := writeConfig(t, dir, fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q, token: %q}
shutdown-grace: 2s
plugins:
  hooks: {type: http, url: %q, secret: %q}
auth: {allow-anonymous: false, plugins: [hooks]}
`, mqttAddr, adminAddr, adminToken, hooksURL, secret))
	serveUntilCleanup(t, cfg, adminAddr)

	lost := make(chan string, 2)
	for _, id := range []string{"alice-1", "alice-2"} {
		c, err := connectWithLost(mqttAddr, id, "alice", "pw1", lost)
		if err != nil {
			t.Fatalf("%s before the revocation: %v", id, err)
		}
		defer c.Disconnect(0)
	}

	cli := func(action string) string {
		t.Helper()
		cmd := exec.Command(node, "bin/disable-user.js", action, "alice")
		cmd.Dir = hooksDir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOOKS_URL=" + hooksURL, "HOOKS_ADMIN_TOKEN=" + hooksToken}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s-user alice: %v\n%s", action, err, out)
		}
		return string(out)
	}
	if out := cli("disable"); !strings.Contains(out, "kicked alice-1, alice-2") {
		t.Fatalf("disable-user said %q", out)
	}
	for range 2 {
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("alice was not disconnected")
		}
	}
	// The same client id, password and address as before: the broker's
	// cached allow would let this in had it not been purged.
	if c, err := connectAs(mqttAddr, "alice-1", "alice", "pw1", nil); err == nil {
		c.Disconnect(0)
		t.Fatal("alice connected after disable-user")
	}
	cli("enable")
	c, err := connectAs(mqttAddr, "alice-1", "alice", "pw1", nil)
	if err != nil {
		t.Fatalf("alice after enable-user: %v", err)
	}
	c.Disconnect(0)
}

// connectWithLost connects like connectAs and reports the client id on lost
// when the connection ends without the client asking.
func connectWithLost(addr, id, user, pw string, lost chan<- string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(pw).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectionLostHandler(func(paho.Client, error) { lost <- id })
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("CONNECT timed out")
	}
	return c, tok.Error()
}
