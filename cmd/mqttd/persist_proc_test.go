//go:build unix

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// brokerProc is the mqttd binary run on one config and one store across
// restarts: the same ports, the same working directory (the store is
// ./data/store there, the default storage.dir).
type brokerProc struct {
	t                *testing.T
	bin, dir, cfg    string
	mqttAddr, admAdr string
	env              []string
	cmd              *exec.Cmd
	out              *syncBuffer
	done             chan int
	starts           int
}

// newBrokerProc writes a config with free loopback ports plus extra (YAML
// appended to it) in a fresh directory.
func newBrokerProc(t *testing.T, extra string, env ...string) *brokerProc {
	t.Helper()
	b := &brokerProc{t: t, bin: mqttdBinary(t), dir: t.TempDir(), mqttAddr: freePort(t), admAdr: freePort(t), env: cleanEnv(env...)}
	b.cfg = filepath.Join(b.dir, "mqttd.yaml")
	conf := fmt.Sprintf("listeners:\n  default: {bind: %q}\nadmin: {bind: %q}\nsys-interval: 0\nshutdown-grace: 2s\n%s", b.mqttAddr, b.admAdr, extra)
	if err := os.WriteFile(b.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.running() {
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("mqttd log (%d starts):\n%s", b.starts, tail(b.logs(), 60))
		}
	})
	return b
}

func (b *brokerProc) running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

func (b *brokerProc) logs() string {
	if b.out == nil {
		return ""
	}
	return b.out.String()
}

// launch starts the binary; it does not wait for it.
func (b *brokerProc) launch() {
	b.t.Helper()
	b.starts++
	b.cmd = exec.Command(b.bin, "--config", b.cfg)
	b.cmd.Dir, b.cmd.Env = b.dir, b.env
	if b.out == nil {
		b.out = &syncBuffer{}
	}
	fmt.Fprintf(b.out, "---- start %d ----\n", b.starts)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	done := make(chan int, 1)
	b.done = done
	cmd := b.cmd
	go func() {
		cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
		close(done)
	}()
}

// start launches the binary and waits until /readyz answers 200.
func (b *brokerProc) start() {
	b.t.Helper()
	b.launch()
	waitReady(b.t, "http://"+b.admAdr, b.done, b.out)
}

// exitCode waits for the process to end by itself.
func (b *brokerProc) exitCode(within time.Duration) int {
	b.t.Helper()
	select {
	case code := <-b.done:
		return code
	case <-time.After(within):
		b.t.Fatalf("mqttd still running after %v\n%s", within, b.logs())
	}
	return -1
}

// kill9 ends the process with SIGKILL: nothing is flushed or closed.
func (b *brokerProc) kill9() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	<-b.done
}

// term ends the process with SIGTERM and wants exit status 0.
func (b *brokerProc) term() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.t.Fatal(err)
	}
	if code := b.exitCode(15 * time.Second); code != 0 {
		b.t.Fatalf("exit status %d after SIGTERM\n%s", code, b.logs())
	}
}

// metrics returns the /metrics text.
func (b *brokerProc) metrics() string {
	b.t.Helper()
	resp, err := http.Get("http://" + b.admAdr + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func (b *brokerProc) storeDir() string { return filepath.Join(b.dir, "data", "store") }

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// A second mqttd on the same store is refused at start, naming the
// directory, and leaves the first one serving; the first one reports the
// store in /metrics.
func TestBinarySecondProcessOnStoreRefused(t *testing.T) {
	first := newBrokerProc(t, "")
	first.start()
	second := newBrokerProc(t, fmt.Sprintf("storage: {dir: %q}\n", first.storeDir()))
	second.launch()
	if code := second.exitCode(15 * time.Second); code != exitFailure {
		t.Errorf("second mqttd on the same store: exit %d, want %d", code, exitFailure)
	}
	want := "store " + first.storeDir() + " is in use by another mqttd"
	if !strings.Contains(second.logs(), want) {
		t.Errorf("second mqttd's log lacks %q:\n%s", want, second.logs())
	}
	if ack := mqttConnect(t, first.mqttAddr); ack[0] != 0x20 {
		t.Errorf("first mqttd: CONNACK = % x", ack)
	}
	m := first.metrics()
	for _, want := range []string{"mqttd_store_disk_bytes ", "mqttd_store_recovery_seconds ", "mqttd_store_write_batches_total ",
		"mqttd_store_write_errors_total 0", "mqttd_store_commit_seconds_bucket", "mqttd_store_fsync_seconds_bucket"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	first.term()
	if !strings.Contains(first.logs(), "store closed") {
		t.Errorf("log lacks the store's close after SIGTERM:\n%s", first.logs())
	}
}

// A corrupt store stops the start with a message naming the directory and
// the fix, and is left as it was; with storage.on-corrupt: quarantine it is
// moved aside and the broker starts empty.
func TestBinaryCorruptStore(t *testing.T) {
	b := newBrokerProc(t, "")
	b.start()
	b.term()
	damageStore(t, b.storeDir(), []byte("sclient"), []byte{1, 0xff})

	b.launch()
	if code := b.exitCode(15 * time.Second); code != exitFailure {
		t.Fatalf("start on a corrupt store: exit %d, want %d", code, exitFailure)
	}
	for _, want := range []string{"cannot open the store", "store is corrupt: " + b.storeDir(), "storage.on-corrupt: quarantine"} {
		if !strings.Contains(b.logs(), want) {
			t.Errorf("log lacks %q", want)
		}
	}

	b.env = append(b.env, "MQTTD_STORAGE_ON_CORRUPT=quarantine")
	b.start()
	aside, _ := filepath.Glob(b.storeDir() + ".corrupt-*")
	if len(aside) != 1 || !strings.Contains(b.logs(), "started EMPTY") {
		t.Errorf("quarantine: moved to %v; want one DIR.corrupt-TIME and an error in the log", aside)
	}
	b.term()
}
