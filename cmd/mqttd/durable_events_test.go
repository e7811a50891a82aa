package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Durable plugin events end to end: a real HTTP plugin on loopback that is
// down (it drops every connection) while clients publish, mqttd stopped and
// started again in between, then the plugin back. Every event arrives, each
// client's in the order published; repeats (at least once) are counted.

// eventSink is the plugin: it records the index of each
// broker_message_received event per client (the topic is d/<client>/<i>).
type eventSink struct {
	srv  *httptest.Server
	down atomic.Bool

	mu      sync.Mutex
	got     map[string][]int
	changed chan struct{}
}

func newEventSink(t *testing.T) *eventSink {
	s := &eventSink{got: map[string][]int{}, changed: make(chan struct{}, 1)}
	s.down.Store(true)
	s.srv = httptest.NewServer(s)
	t.Cleanup(func() { s.srv.CloseClientConnections(); s.srv.Close() })
	return s
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() { // as a crashed plugin: the connection just ends
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	if r.URL.Path != "/events" {
		http.NotFound(w, r)
		return
	}
	var batch struct {
		Events []struct {
			Type     string `json:"type"`
			ClientID string `json:"client_id"`
			Message  struct {
				Topic string `json:"topic"`
			} `json:"message"`
		} `json:"events"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	for _, e := range batch.Events {
		parts := strings.Split(e.Message.Topic, "/")
		if e.Type != "broker_message_received" || len(parts) != 3 {
			continue
		}
		i, _ := strconv.Atoi(parts[2])
		s.got[e.ClientID] = append(s.got[e.ClientID], i)
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitAll waits until every client's events 0..n-1 have arrived, then
// checks that their first arrivals are in order and returns the repeats.
func (s *eventSink) waitAll(t *testing.T, clients []string, n int, logs fmt.Stringer) (dups int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		done := true
		for _, c := range clients {
			done = done && distinctInts(s.got[c]) >= n
		}
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-s.changed:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("plugin got %v, want 0..%d of each client\n%s", s.got, n-1, logs)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range clients {
		seen := map[int]bool{}
		next := 0
		for _, i := range s.got[c] {
			if seen[i] {
				dups++
				continue
			}
			if i != next {
				t.Fatalf("client %s: event %d arrived where %d was due: %v", c, i, next, s.got[c])
			}
			seen[i] = true
			next++
		}
	}
	return dups
}

func distinctInts(v []int) int {
	seen := map[int]bool{}
	for _, i := range v {
		seen[i] = true
	}
	return len(seen)
}

// publishAll connects each client, publishes its messages from..to-1 at
// QoS 1 (each acknowledged), and disconnects.
func publishAll(t *testing.T, addr string, clients []string, from, to int) {
	t.Helper()
	for _, id := range clients {
		o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
			SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		for i := from; i < to; i++ {
			tok := c.Publish(fmt.Sprintf("d/%s/%d", id, i), 1, false, "x")
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s %d: %v", id, i, tok.Error())
			}
		}
		c.Disconnect(100)
	}
}

func durableConfig(t *testing.T, dir, mqttAddr, adminAddr, pluginURL string) string {
	return writeConfig(t, dir, fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
logging: {format: json}
plugins:
  sink:
    type: http
    url: %q
    events: [broker_message_received]
    queue: {durable: true, durable-dir: %q, backoff: 5ms, max-backoff: 50ms, linger: 5ms}
`, mqttAddr, adminAddr, pluginURL, filepath.Join(dir, "spool")))
}

// metric reads one sample of the plugin's series from /metrics.
func metric(t *testing.T, adminAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	prefix := name + `{plugin="sink"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func TestDurableEventsAcrossRestartInProcess(t *testing.T) {
	isolate(t)
	sink := newEventSink(t)
	dir := t.TempDir()
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := durableConfig(t, dir, mqttAddr, adminAddr, sink.srv.URL)
	clients := []string{"dev-a", "dev-b", "dev-c"}
	const half = 40

	errb := &syncBuffer{} // both runs' logs
	start := func() (stop func() string) {
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"--config", cfg}, &bytes.Buffer{}, errb) }()
		waitReady(t, "http://"+adminAddr, done, errb)
		return func() string {
			cancel(fmt.Errorf("restart"))
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d\n%s", code, errb)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("run did not return\n%s", errb)
			}
			return errb.String()
		}
	}

	stop := start()
	publishAll(t, mqttAddr, clients, 0, half) // the plugin is down
	stop()                                    // graceful: what is in memory goes to the spool

	stop = start()
	publishAll(t, mqttAddr, clients, half, 2*half) // still down: behind the spooled ones
	sink.down.Store(false)
	dups := sink.waitAll(t, clients, 2*half, errb)
	// Counted once the plugin has answered, so just after it recorded them.
	var fromSpool float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fromSpool = metric(t, adminAddr, "mqttd_webhook_events_spool_delivered_total"); fromSpool >= float64(len(clients)*half) {
			break
		}
	}
	stop()
	t.Logf("%d events per client arrived in order; %d repeats; %v delivered from the spool by the second run", 2*half, dups, fromSpool)
	if fromSpool < float64(len(clients)*half) {
		t.Errorf("second run delivered %v from the spool, want at least the first run's %d", fromSpool, len(clients)*half)
	}
}

// TestDurableEventsSurviveKill9 runs the mqttd binary: events spooled while
// the plugin is down survive kill -9 and arrive, in order, from the
// restarted broker.
func TestDurableEventsSurviveKill9(t *testing.T) {
	root, _ := filepath.Abs("../..")
	isolate(t)
	bin := filepath.Join(t.TempDir(), "mqttd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mqttd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mqttd: %v\n%s", err, out)
	}
	sink := newEventSink(t)
	dir := t.TempDir()
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := durableConfig(t, dir, mqttAddr, adminAddr, sink.srv.URL)
	clients := []string{"k-a", "k-b", "k-c"}
	const half = 40

	start := func() (*exec.Cmd, <-chan struct{}, *syncBuffer) {
		cmd := exec.Command(bin, "--config", cfg)
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		waitReady(t, "http://"+adminAddr, done, logs)
		return cmd, done, logs
	}

	cmd, done, logs := start()
	publishAll(t, mqttAddr, clients, 0, half)
	// Spooled counts events once fsynced; every one of them must survive.
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, adminAddr, "mqttd_webhook_events_spooled_total") < float64(len(clients)*half) {
		if time.Now().After(deadline) {
			t.Fatalf("events not spooled within 30s\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	<-done

	_, _, logs = start()
	publishAll(t, mqttAddr, clients, half, 2*half)
	sink.down.Store(false)
	dups := sink.waitAll(t, clients, 2*half, logs)
	t.Logf("after kill -9: %d events per client arrived in order; %d repeats", 2*half, dups)
	if _, err := os.Stat(filepath.Join(dir, "spool")); err != nil {
		t.Errorf("spool directory: %v", err)
	}
}
