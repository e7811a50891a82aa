//go:build unix

package main

// The restart measurement behind docs/benchmarks.md ("Persistence"): a
// store holding many persistent sessions and a large backlog, then the
// real binary started on it. It is a measurement, not a test: it runs only
// with MQTTD_BENCH_RESTART set, and asserts correctness (every session
// back, a resumed session gets its messages), never a time.

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// MQTTD_BENCH_RESTART=SESSIONSxPER (default 100000x10: 100 k sessions,
// 1 M queued 64-byte messages).
func TestBenchRestartLargeStore(t *testing.T) {
	spec := os.Getenv("MQTTD_BENCH_RESTART")
	if spec == "" {
		t.Skip("a measurement: set MQTTD_BENCH_RESTART=1 (or SESSIONSxPER, e.g. 100000x10)")
	}
	sessions, per := 100000, 10
	if spec != "1" {
		if _, err := fmt.Sscanf(spec, "%dx%d", &sessions, &per); err != nil {
			t.Fatalf("MQTTD_BENCH_RESTART=%q: want 1 or SESSIONSxPER", spec)
		}
	}
	b := newBrokerProc(t, "storage: {type: pebble, durability: sync}\nlimits: {max-queued: 100000}\n")

	// Empty store first: the baseline start of the same binary.
	emptyStart, emptyRSS := timedStart(t, b)
	b.term()

	fillStart := time.Now()
	fillStore(t, b.storeDir(), sessions, per)
	fill := time.Since(fillStart)
	disk, apparent := dirBytes(t, b.storeDir())

	loadedStart, loadedRSS := timedStart(t, b)
	recovery := metricValue(t, b.metrics(), "mqttd_store_recovery_seconds")
	persisted := metricValue(t, b.metrics(), "mqttd_sessions_persisted")
	if int(persisted) != sessions {
		t.Fatalf("sessions back after restart: %v, want %d", persisted, sessions)
	}
	time.Sleep(2 * time.Second) // let the runtime return what recovery freed
	settledRSS := rss(t, b.cmd.Process.Pid)
	diskLater, _ := dirBytes(t, b.storeDir())
	resumeOne(t, b, sessions/2, per)

	msgs := sessions * per
	t.Logf("store: %d sessions, %d queued %d-byte random messages, filled through pebblestore's API in %v", sessions, msgs, benchPayload, fill.Round(time.Millisecond))
	t.Logf("disk after the fill: %d bytes allocated (du), %d apparent = %.0f / %.0f bytes per queued message", disk, apparent, float64(disk)/float64(msgs), float64(apparent)/float64(msgs))
	t.Logf("disk with the broker up 2s: %d bytes allocated = %.0f bytes per queued message", diskLater, float64(diskLater)/float64(msgs))
	t.Logf("start to /readyz: empty store %v, loaded %v (recovery metric %.3fs)", emptyStart.Round(time.Millisecond), loadedStart.Round(time.Millisecond), recovery)
	t.Logf("RSS after ready: empty %d MiB, loaded %d MiB, loaded 2s later %d MiB", emptyRSS>>20, loadedRSS>>20, settledRSS>>20)
}

const benchPayload = 64

// fillStore writes sessions persistent 3.1.1 sessions, each subscribed to
// its own topic with per QoS 1 messages queued, straight into the store.
func fillStore(t *testing.T, dir string, sessions, per int) {
	t.Helper()
	st, err := pebblestore.Open(dir, pebblestore.Options{Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	// Random payloads: Pebble compresses its blocks, and a repeated byte
	// would make the disk figure meaningless.
	rnd := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	var bt store.Batch
	for i := range sessions {
		id := fmt.Sprintf("bench-%06d", i)
		topic := "bench/" + strconv.Itoa(i)
		bt.PutSession(&store.SessionRecord{ClientID: id, Version: 4, Expiry: store.NeverExpires, OfflineSince: now,
			Subs: []store.SubscriptionRecord{{Filter: topic, QoS: 1}}})
		for range per {
			payload := make([]byte, benchPayload)
			for j := range payload {
				payload[j] = byte(rnd.Uint32())
			}
			bt.Enqueue(&store.MessageRecord{Topic: topic, Payload: payload, QoS: 1, From: "bench-pub", Created: now},
				[]store.Delivery{{ClientID: id, QoS: 1}})
		}
		if bt.Len() >= 10000 || i == sessions-1 {
			if err := st.Commit(t.Context(), &bt); err != nil {
				t.Fatal(err)
			}
			bt.Reset()
		}
	}
}

// timedStart launches the binary and returns the time to /readyz 200 and
// the process's RSS then.
func timedStart(t *testing.T, b *brokerProc) (time.Duration, int64) {
	t.Helper()
	start := time.Now()
	b.launch()
	client := &http.Client{Timeout: time.Second}
	for deadline := start.Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !b.running() {
			t.Fatalf("mqttd exited before it was ready\n%s", b.logs())
		}
		resp, err := client.Get("http://" + b.admAdr + "/readyz")
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return time.Since(start), rss(t, b.cmd.Process.Pid)
		}
	}
	t.Fatalf("not ready within 5 minutes\n%s", b.logs())
	return 0, 0
}

// resumeOne connects session i and wants its per queued messages.
func resumeOne(t *testing.T, b *brokerProc, i, per int) {
	t.Helper()
	got := make(chan string, per+1)
	o := paho.NewClientOptions().AddBroker("tcp://" + b.mqttAddr).SetClientID(fmt.Sprintf("bench-%06d", i)).
		SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("resume: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for n := range per {
		select {
		case topic := <-got:
			if topic != "bench/"+strconv.Itoa(i) {
				t.Fatalf("resumed session got %q", topic)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("resumed session got %d of %d queued messages", n, per)
		}
	}
}

// dirBytes is the disk space under dir as du counts it (allocated blocks)
// and the sum of the file sizes.
func dirBytes(t *testing.T, dir string) (disk, apparent int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		apparent += fi.Size()
		disk += allocated(fi)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return disk, apparent
}

// rss reads VmRSS of pid from /proc, in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// allocated is the disk space a file takes, as du reports it.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
