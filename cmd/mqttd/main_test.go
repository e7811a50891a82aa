//go:build unix

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// mqttdBinary builds this command once per test run.
func mqttdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go tool is not on PATH: %v", err)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "mqttd-test-"); buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "mqttd")
		out, err := exec.Command(goTool, "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// cleanEnv is the test's environment without MQTTD_ variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQTTD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// The binary starts, becomes ready, serves MQTT and metrics, and exits 0
// within the grace period on SIGTERM, even with a client connected.
func TestBinaryRunsAndStopsOnSIGTERM(t *testing.T) {
	bin := mqttdBinary(t)
	dir := t.TempDir()
	mqttAddr, adminAddr := freePort(t), freePort(t)
	const grace = 2 * time.Second
	cfg := filepath.Join(dir, "mqttd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
name: test-node
listeners:
  default: {type: tcp, bind: %q}
admin:
  bind: %q
shutdown-grace: %s
sys-interval: 0
`, mqttAddr, adminAddr, grace)), 0o600)

	cmd := exec.Command(bin, "--config", cfg)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var stderr syncBuffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})

	waitReady(t, "http://"+adminAddr, done, &stderr)

	if ack := mqttConnect(t, mqttAddr); ack[0] != 0x20 {
		t.Errorf("CONNACK = % x, want a CONNACK (20 ...)", ack)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"mqttd_clients_connected ", "mqttd_uptime_seconds ", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A client that stays connected through the shutdown.
	held, err := net.Dial("tcp", mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d after SIGTERM, want 0\n%s", code, stderr.String())
		}
		if took := time.Since(start); took > grace+time.Second {
			t.Errorf("shutdown took %v, grace is %v", took, grace)
		}
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("mqttd still running %v after SIGTERM\n%s", grace+5*time.Second, stderr.String())
	}
	logs := stderr.String()
	for _, want := range []string{
		"msg=\"listener ready\" listener=default type=tcp tls=false addr=" + mqttAddr,
		"msg=\"admin listening\" addr=" + adminAddr,
		"msg=\"shutting down\" reason=\"received SIGTERM\"",
		"msg=stopped",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestBinaryCheckConfig(t *testing.T) {
	bin := mqttdBinary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("limits:\n  connect-timeout: \"5\"\n  max-inflite: 3\n"), 0o600)
	cmd := exec.Command(bin, "check-config", "--config", bad)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("check-config on a bad file: exit %d (%v), want 2", code, err)
	}
	if want := `config: ` + bad + `: unknown key "limits.max-inflite"`; !strings.Contains(stderr.String(), want) || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want the error %q on stderr only", stderr.String(), stdout.String(), want)
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("limits:\n  max-inflight: 8\n"), 0o600)
	cmd = exec.Command(bin, "check-config", "--config", good)
	cmd.Dir, cmd.Env = dir, cleanEnv("MQTTD_LOGGING_FORMAT=json", "MQTTD_ADMIN_BIND=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check-config on a good file: %v", err)
	}
	for _, want := range []string{"max-inflight: 8\n", "format: json # from $MQTTD_LOGGING_FORMAT\n", `bind: "" # from $MQTTD_ADMIN_BIND`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
}
