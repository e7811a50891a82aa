//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"
)

func passwdLine(t *testing.T, user, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h) + "\n"
}

func connectAs(addr, id, user, pw string, onMsg paho.MessageHandler) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(pw).
		SetAutoReconnect(false).SetConnectRetry(false).SetDefaultPublishHandler(onMsg)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("CONNECT timed out")
	}
	return c, tok.Error()
}

func subscribeCode(t *testing.T, c paho.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// SIGHUP re-reads the config file: a user added to the password file and a
// rule added to the ACL apply to the next CONNECT and SUBSCRIBE, while the
// clients already connected stay connected. A reload that fails changes
// nothing.
func TestSIGHUPReloadsPluginFiles(t *testing.T) {
	pwFile, aclFile, mqttAddr, errb := serveWithPluginFiles(t, "pw", "acl", passwdLine(t, "alice", "pw1"),
		"user alice\ntopic readwrite sensors/#\n")

	got := make(chan string, 16)
	alice, err := connectAs(mqttAddr, "alice-1", "alice", "pw1", func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	if err != nil {
		t.Fatalf("alice: %v\n%s", err, errb.String())
	}
	defer alice.Disconnect(100)
	if _, err := connectAs(mqttAddr, "bob-1", "bob", "pw2", nil); err == nil {
		t.Fatal("bob connected before he was in the password file")
	}
	if code := subscribeCode(t, alice, "sensors/#"); code != 1 {
		t.Fatalf("sensors/# granted %#x, want QoS 1", code)
	}
	if code := subscribeCode(t, alice, "alerts/#"); code != 0x80 {
		t.Fatalf("alerts/# before the reload: %#x, want 0x80", code)
	}

	reloads := strings.Count(errb.String(), "reloaded plugins")
	writeFile(t, pwFile, passwdLine(t, "alice", "pw1")+passwdLine(t, "bob", "pw2"))
	writeFile(t, aclFile, "user alice\ntopic readwrite sensors/#\ntopic read alerts/#\n")
	hupAndWait(t, errb, "reloaded plugins")
	if n := strings.Count(errb.String(), "reloaded plugins"); n != reloads+1 {
		t.Fatalf("%d reloads logged, want %d", n, reloads+1)
	}
	if !alice.IsConnectionOpen() {
		t.Fatal("alice was disconnected by the reload")
	}
	bob, err := connectAs(mqttAddr, "bob-1", "bob", "pw2", nil)
	if err != nil {
		t.Fatalf("bob after the reload: %v\n%s", err, errb.String())
	}
	bob.Disconnect(100)
	if code := subscribeCode(t, alice, "alerts/#"); code != 1 {
		t.Fatalf("alerts/# after the reload: %#x, want QoS 1", code)
	}
	// alice's old subscription still delivers through the reloaded chain.
	alice.Publish("sensors/t", 1, false, "x").WaitTimeout(5 * time.Second)
	select {
	case topic := <-got:
		if topic != "sensors/t" {
			t.Fatalf("alice got %q", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alice's subscription no longer delivers after the reload")
	}

	// A broken ACL: the reload fails, is logged, and the old rules stay.
	writeFile(t, aclFile, "user alice\nfrobnicate alerts/#\n")
	hupAndWait(t, errb, "reload failed")
	if code := subscribeCode(t, alice, "alerts/x"); code != 1 {
		t.Fatalf("after a failed reload alerts/x: %#x, want the previous rules (QoS 1)", code)
	}
	if !alice.IsConnectionOpen() {
		t.Fatal("alice was disconnected by the failed reload")
	}
}

// serveWithPluginFiles runs mqttd, until the test ends, with a
// password-file plugin named pw as its auth chain and an acl-file plugin
// named acl as its topic check, on files it writes with passwd and rules. It
// returns the two files' paths, the MQTT address and the broker's log.
func serveWithPluginFiles(t *testing.T, pw, acl, passwd, rules string) (pwFile, aclFile, mqttAddr string, errb *syncBuffer) {
	t.Helper()
	isolate(t)
	dir := t.TempDir()
	pwFile, aclFile = filepath.Join(dir, "passwd"), filepath.Join(dir, "acl.conf")
	writeFile(t, pwFile, passwd)
	writeFile(t, aclFile, rules)
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
plugins:
  %s: {type: password-file, file: passwd}
  %s: {type: acl-file, file: acl.conf}
auth: {allow-anonymous: false, plugins: [%s]}
topic-check: {enable: true, plugins: [%s]}
`, mqttAddr, adminAddr, pw, acl, pw, acl))
	return pwFile, aclFile, mqttAddr, serveUntilCleanup(t, cfg, adminAddr)
}

// writeFile writes a plugin file the way an operator's editor would leave
// it: whole, readable by the broker's user only.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hupAndWait sends SIGHUP and waits until the log holds one more marker
// than before.
func hupAndWait(t *testing.T, errb *syncBuffer, marker string) {
	t.Helper()
	before := strings.Count(errb.String(), marker)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(errb.String(), marker) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no new %q in the log after SIGHUP:\n%s", marker, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A reload that fails on one alias changes no other: a password file whose
// plugin is configured as before is read during the reload, but what it
// read applies only once every alias has been built and the manager took
// them. Here the password file loses bob while the ACL file breaks; bob
// must still get in until the ACL is fixed and a second SIGHUP applies both.
func TestSIGHUPFailedReloadKeepsEveryFile(t *testing.T) {
	alice, bob := passwdLine(t, "alice", "pw1"), passwdLine(t, "bob", "pw2")
	pwFile, aclFile, mqttAddr, errb := serveWithPluginFiles(t, "a", "b", alice+bob,
		"user alice\ntopic readwrite sensors/#\n")
	canConnect := func(id, user, pw string) bool {
		t.Helper()
		c, err := connectAs(mqttAddr, id, user, pw, nil)
		if err != nil {
			return false
		}
		c.Disconnect(100)
		return true
	}
	if !canConnect("bob-1", "bob", "pw2") {
		t.Fatalf("bob cannot connect at start\n%s", errb.String())
	}
	watcher, err := connectAs(mqttAddr, "alice-1", "alice", "pw1", nil)
	if err != nil {
		t.Fatalf("alice: %v\n%s", err, errb.String())
	}
	defer watcher.Disconnect(100)

	writeFile(t, pwFile, alice) // bob removed
	writeFile(t, aclFile, "user alice\nfrobnicate alerts/#\n")
	hupAndWait(t, errb, "reload failed")
	if !strings.Contains(errb.String(), "plugins.b") {
		t.Fatalf("the failed reload's log does not name the broken alias:\n%s", errb.String())
	}
	if !canConnect("bob-2", "bob", "pw2") {
		t.Fatalf("a failed reload applied the password file: bob was refused\n%s", errb.String())
	}
	if code := subscribeCode(t, watcher, "alerts/x"); code != 0x80 {
		t.Fatalf("alerts/x after the failed reload: %#x, want the old rules (0x80)", code)
	}

	writeFile(t, aclFile, "user alice\ntopic readwrite sensors/#\ntopic read alerts/#\n")
	hupAndWait(t, errb, "reloaded plugins")
	if canConnect("bob-3", "bob", "pw2") {
		t.Fatal("bob still connects after a successful reload removed him")
	}
	if code := subscribeCode(t, watcher, "alerts/x"); code != 1 {
		t.Fatalf("alerts/x after the successful reload: %#x, want QoS 1", code)
	}
	if !watcher.IsConnectionOpen() {
		t.Fatal("alice was disconnected by a reload")
	}
}

// A reload the hooks manager refuses (adding the first event plugin needs
// a restart; topic-check no longer does once an auth plugin is loaded,
// since the topic chain is there to enforce its grants) comes after every
// alias was built, the unchanged password file
// re-read included: that file must not apply either.
func TestSIGHUPRefusedReloadKeepsPasswordFile(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	alice, bob := passwdLine(t, "alice", "pw1"), passwdLine(t, "bob", "pw2")
	writeFile(t, pwFile, alice+bob)
	writeFile(t, filepath.Join(dir, "acl.conf"), "user alice\ntopic readwrite sensors/#\n")
	mqttAddr, adminAddr := freePort(t), freePort(t)
	head := fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
auth: {allow-anonymous: false, plugins: [a]}
`, mqttAddr, adminAddr)
	cfg := writeConfig(t, dir, head+`
plugins:
  a: {type: password-file, file: passwd}
`)
	errb := serveUntilCleanup(t, cfg, adminAddr)
	canConnect := func(id string) bool {
		t.Helper()
		c, err := connectAs(mqttAddr, id, "bob", "pw2", nil)
		if err != nil {
			return false
		}
		c.Disconnect(100)
		return true
	}
	if !canConnect("bob-1") {
		t.Fatalf("bob cannot connect at start\n%s", errb.String())
	}
	writeFile(t, pwFile, alice) // bob removed
	writeConfig(t, dir, head+`
plugins:
  a: {type: password-file, file: passwd}
  b: {type: acl-file, file: acl.conf}
  c: {type: event-log}
topic-check: {enable: true, plugins: [b]}
`)
	hupAndWait(t, errb, "reload failed")
	if !strings.Contains(errb.String(), "needs a restart") {
		t.Fatalf("the refused reload does not say why:\n%s", errb.String())
	}
	if !canConnect("bob-2") {
		t.Fatalf("a refused reload applied the password file: bob was refused\n%s", errb.String())
	}
}
