//go:build unix

package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// authPlugin is an HTTP plugin every node asks to authenticate its clients:
// it allows everyone and counts the calls per user name, so a decision
// served from a node's cache shows as no call.
type authPlugin struct {
	url   string
	mu    sync.Mutex
	calls map[string]int
}

func newAuthPlugin(t *testing.T) *authPlugin {
	p := &authPlugin{calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *authPlugin) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/manifest":
		fmt.Fprint(w, `{"name":"cluster-test","version":"1","authenticate":true,"topic_filtering":false,"events":[]}`)
	case "/authenticate":
		var req struct {
			Username string `json:"username"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.calls[req.Username]++
		p.mu.Unlock()
		fmt.Fprint(w, `{"result":"allow"}`)
	default:
		http.NotFound(w, r)
	}
}

func (p *authPlugin) callsFor(user string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[user]
}

// connectAs connects and disconnects a client with a user name.
func connectAs(t *testing.T, n *node, id, user string) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + n.mqtt).SetClientID(id).SetUsername(user).SetPassword("pw").
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(opWithin)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(opWithin) || tok.Error() != nil {
		t.Fatalf("%s as %s on %s: %v", id, user, n.name, tok.Error())
	}
	c.Disconnect(50)
}

// testPurge: node-2 caches alice's authentication; a purge of alice through
// node-1's admin API makes node-2 ask the plugin again.
func testPurge(t *testing.T, plugin *authPlugin, n1, n2 *node) {
	connectAs(t, n2, "purge-alice", "alice")
	connectAs(t, n2, "purge-alice", "alice")
	if got := plugin.callsFor("alice"); got != 1 {
		t.Fatalf("plugin asked %d times for alice before the purge, want 1 (the second from node-2's cache)", got)
	}
	resp, err := http.Post("http://"+n1.admin+"/api/v1/cache/purge", "application/json", strings.NewReader(`{"username":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/cache/purge on node-1: %d", resp.StatusCode)
	}
	// The purge travels asynchronously: connect until node-2 asks again.
	deadline := time.Now().Add(waitWithin)
	for plugin.callsFor("alice") == 1 {
		if time.Now().After(deadline) {
			t.Fatalf("node-2 still serves alice from its cache %v after the purge on node-1", waitWithin)
		}
		connectAs(t, n2, "purge-alice", "alice")
	}
}
