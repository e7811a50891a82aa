//go:build unix

package cluster

import (
	"bytes"
	"cmp"
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

// readyWithin bounds how long a process may take to become ready; generous
// for a loaded 2-core machine.
const readyWithin = 30 * time.Second

func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", r, err)
	}
	return r
}

// buildBinaries builds mqttd and nats-server (the module version go.mod
// requires) into dir, in parallel.
func buildBinaries(t *testing.T, dir string) (mqttd, natsServer string) {
	t.Helper()
	root := repoRoot(t)
	mqttd, natsServer = filepath.Join(dir, "mqttd"), filepath.Join(dir, "nats-server")
	pkgs := map[string]string{mqttd: "./cmd/mqttd", natsServer: "github.com/nats-io/nats-server/v2"}
	var wg sync.WaitGroup
	errs := make(chan string, len(pkgs))
	for out, pkg := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("go build %s: %v\n%s", pkg, err, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	return mqttd, natsServer
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// proc is one process, restartable with the same arguments.
type proc struct {
	t      *testing.T
	name   string
	args   []string
	dir    string
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{}
	starts int
}

func newProc(t *testing.T, name, dir string, args ...string) *proc {
	p := &proc{t: t, name: name, dir: dir, args: args, out: &syncBuffer{}}
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if d := os.Getenv("CLUSTER_TEST_LOGS"); d != "" {
			os.WriteFile(filepath.Join(d, p.name+".log"), []byte(p.out.String()), 0o644)
		}
		if t.Failed() {
			t.Logf("%s output (%d starts):\n%s", p.name, p.starts, tail(p.out.String(), 40))
		}
	})
	return p
}

func (p *proc) launch() {
	p.t.Helper()
	p.starts++
	fmt.Fprintf(p.out, "---- start %d ----\n", p.starts)
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Dir = p.dir
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		cmd.Wait()
		close(done)
	}()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill9 ends the process with SIGKILL: nothing is flushed, no lease given back.
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
}

// waitFor polls check every 50 ms until it holds, the process exits, or
// readyWithin passes.
func (p *proc) waitFor(what string, check func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(readyWithin)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before %s\n%s", p.name, what, tail(p.out.String(), 40))
		default:
		}
		if check() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s: not %s within %v\n%s", p.name, what, readyWithin, tail(p.out.String(), 40))
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQTTD_") {
			env = append(env, kv)
		}
	}
	return env
}

// startNATS runs nats-server with JetStream, its store in a temporary
// directory, and waits until it accepts connections.
func startNATS(t *testing.T, bin string) (url string) {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	p := newProc(t, "nats-server", dir, bin, "-a", host, "-p", port, "-js", "-sd", filepath.Join(dir, "js"))
	p.launch()
	p.waitFor("accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return "nats://" + addr
}

// node is one mqttd process of the cluster, restartable on the same ports
// and store.
type node struct {
	*proc
	mqtt, admin string // host:port
}

func newNode(t *testing.T, bin, name, natsURL, pluginURL string) *node {
	t.Helper()
	return newNodeStore(t, bin, name, natsURL, pluginURL, "")
}

// newNodeStore is newNode with the store in JetStream, shared by the
// nodes, when storage is "jetstream" (else a pebble store of its own).
func newNodeStore(t *testing.T, bin, name, natsURL, pluginURL, storage string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{mqtt: freePort(t), admin: freePort(t)}
	cfg := fmt.Sprintf(`name: %s
listeners:
  default: {bind: %q}
admin: {bind: %q}
sys-interval: 0
shutdown-grace: 2s
storage: {dir: %q, type: %s}
cluster:
  nats: [%q]
  node-lease: 2s
  forward-timeout: 2s
auth:
  plugins: [auth]
plugins:
  auth:
    url: %q
    timeout: 5s
    cache: {size: 1000, ttl: 1h, max-ttl: 1h}
`, name, n.mqtt, n.admin, filepath.Join(dir, "store"), cmp.Or(storage, "pebble"), natsURL, pluginURL)
	if storage == "jetstream" {
		// The SIGKILL tests queue thousands of messages for a session
		// whose node died: none may be dropped for the queue bound.
		cfg += "limits: {max-queued: 100000}\n"
	}
	path := filepath.Join(dir, "mqttd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.proc = newProc(t, name, dir, bin, "--config", path)
	return n
}

// start launches the node and waits until /readyz answers 200 (it has
// joined the cluster and its listeners are open).
func (n *node) start() {
	n.t.Helper()
	n.launch()
	n.waitReady()
}

func (n *node) waitReady() {
	n.t.Helper()
	client := &http.Client{Timeout: time.Second}
	n.waitFor("ready", func() bool {
		resp, err := client.Get("http://" + n.admin + "/readyz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// metric returns the value of a metric line starting with name on /metrics.
func (n *node) metric(name string) string {
	n.t.Helper()
	resp, err := http.Get("http://" + n.admin + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}
