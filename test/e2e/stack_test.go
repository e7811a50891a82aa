package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bounds for polling. Generous: the machine may be busy with other packages'
// tests; a healthy run needs a fraction of each.
const (
	startWithin   = 30 * time.Second // a process logs that it listens, answers health checks
	eventuallyFor = 15 * time.Second // an asynchronous effect shows up
	recoverWithin = 20 * time.Second // the broker takes the restarted plugin back
	// breakerOpenFor replaces the 10 s default (through an MQTTD_ variable,
	// not the file) so the recovery phase does not wait long.
	breakerOpenFor = "2s"
)

// stack is mqttd and hooks-node, started as docker-compose.yml would start
// them, on 127.0.0.1.
type stack struct {
	t        *testing.T
	root     string
	secret   string
	alias    string // the plugin alias pointing at hooks-node (compose: hooks)
	onError  string // its on-error policy in the compose config
	hooks    *proc
	hooksEnv []string
	hooksCmd []string
	hooksDir string
	hooksURL string // http://127.0.0.1:PORT
	mqttd    *proc
	mqttAddr string // the MQTT listener, host:port
	admin    string // http://host:port of mqttd's admin listener
}

// The parts of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]struct {
		Build       string            `yaml:"build"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

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

// startStack builds mqttd, starts hooks-node and then mqttd, and waits until
// both are ready.
func startStack(t *testing.T) *stack {
	t.Helper()
	root := repoRoot(t)
	node := needHooksNode(t, root)

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "mqttd")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH, cannot build mqttd: %v", err)
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/mqttd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mqttd: %v\n%s", err, out)
	}

	var compose composeFile
	if err := yaml.Unmarshal(readRepoFile(t, root, "docker-compose.yml"), &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	hooksSvc, ok := compose.Services["hooks-node"]
	if !ok {
		t.Fatal("docker-compose.yml: no hooks-node service")
	}
	mqttdSvc, ok := compose.Services["mqttd"]
	if !ok {
		t.Fatal("docker-compose.yml: no mqttd service")
	}

	s := &stack{t: t, root: root, secret: randomSecret(t)}
	vars := map[string]string{"HOOKS_SECRET": s.secret}

	// hooks-node: the command its package.json start script runs, in its
	// build context, with the compose environment. PORT 0 the first time;
	// a restart reuses the port it got.
	s.hooksDir = filepath.Join(root, filepath.FromSlash(hooksSvc.Build))
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(readRepoFile(t, s.hooksDir, "package.json"), &pkg); err != nil {
		t.Fatalf("%s/package.json: %v", hooksSvc.Build, err)
	}
	start := strings.Fields(pkg.Scripts["start"])
	if len(start) < 2 || start[0] != "node" {
		t.Fatalf("%s/package.json: scripts.start = %q, want \"node FILE ...\"", hooksSvc.Build, pkg.Scripts["start"])
	}
	s.hooksCmd = append([]string{node}, start[1:]...)
	s.hooksEnv = composeEnv(t, root, "hooks-node", hooksSvc.Environment, hooksSvc.Volumes, vars)
	if _, ok := hooksSvc.Environment["PORT"]; !ok {
		t.Fatal("docker-compose.yml: hooks-node has no PORT; the test sets it to a free port")
	}
	s.hooks = s.startHooks("0")

	// mqttd: the compose command, the mounted config rewritten for
	// 127.0.0.1, the compose environment.
	if len(mqttdSvc.Command) != 2 || mqttdSvc.Command[0] != "--config" {
		t.Fatalf("docker-compose.yml: mqttd command %v, want [--config FILE]", mqttdSvc.Command)
	}
	cfgRel := hostPath(t, "mqttd", mqttdSvc.Volumes, mqttdSvc.Command[1])
	cfgPath := s.deriveConfig(cfgRel, filepath.Join(tmp, "mqttd.yaml"))
	env := composeEnv(t, root, "mqttd", mqttdSvc.Environment, mqttdSvc.Volumes, vars)
	envName := "MQTTD_PLUGINS_" + strings.ToUpper(strings.ReplaceAll(s.alias, "-", "_")) + "_BREAKER_OPEN_FOR"
	env = append(env, envName+"="+breakerOpenFor, "MQTTD_LOGGING_FORMAT=json",
		"MQTTD_STORAGE_DIR="+filepath.Join(tmp, "data")) // the container's volume: a fresh store, not the checkout's
	s.mqttd = startProc(t, "mqttd", root, env, bin, "--config", cfgPath)

	adm := s.mqttd.waitLog(t, func(m map[string]any) bool { return m["msg"] == "admin listening" })
	s.admin = "http://" + fmt.Sprint(adm["addr"])
	lst := s.mqttd.waitLog(t, func(m map[string]any) bool { return m["msg"] == "listener ready" })
	s.mqttAddr = fmt.Sprint(lst["addr"])
	if _, _, err := net.SplitHostPort(s.mqttAddr); err != nil {
		t.Fatalf("mqttd logged listener address %q: %v", s.mqttAddr, err)
	}
	// /readyz says ready once the auth plugin has answered.
	eventually(t, startWithin, "mqttd /readyz answers 200", func() (bool, string) {
		if err := s.mqttd.exited(); err != nil {
			t.Fatalf("mqttd exited while starting: %v", err)
		}
		code, body, err := httpGet(s.admin + "/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
	})
	return s
}

// startHooks starts hooks-node on port and waits for its /healthz.
func (s *stack) startHooks(port string) *proc {
	t := s.t
	t.Helper()
	env := append(slices.Clone(s.hooksEnv), "PORT="+port)
	p := startProc(t, "hooks-node", s.hooksDir, env, s.hooksCmd[0], s.hooksCmd[1:]...)
	m := p.waitLog(t, func(m map[string]any) bool { return m["msg"] == "listening" })
	got := fmt.Sprint(m["port"])
	if port != "0" && got != port {
		t.Fatalf("hooks-node listens on port %s, asked for %s", got, port)
	}
	s.hooksURL = "http://127.0.0.1:" + got
	eventually(t, startWithin, "hooks-node /healthz answers 200", func() (bool, string) {
		if err := p.exited(); err != nil {
			t.Fatalf("hooks-node exited while starting: %v", err)
		}
		code, body, err := httpGet(s.hooksURL + "/healthz")
		return code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
	})
	return p
}

// hooksPort is the port hooks-node listens on.
func (s *stack) hooksPort() string {
	u, err := url.Parse(s.hooksURL)
	if err != nil {
		s.t.Fatal(err)
	}
	return u.Port()
}

// deriveConfig writes the compose config with only what cannot work outside
// compose changed: every listener and the admin listener bind 127.0.0.1:0,
// and the plugin whose URL names the hooks-node service points at the local
// hooks-node. Every other key (plugins, auth, topic-check, ...) is the file's.
func (s *stack) deriveConfig(rel, out string) string {
	t := s.t
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, s.root, rel), &doc); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	section := func(m map[string]any, key string) map[string]any {
		v, ok := m[key].(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s section (the test rewrites it for 127.0.0.1)", rel, key)
		}
		return v
	}
	listeners := section(doc, "listeners")
	if len(listeners) == 0 {
		t.Fatalf("%s: no listeners", rel)
	}
	for name := range listeners {
		l, ok := listeners[name].(map[string]any)
		if !ok {
			t.Fatalf("%s: listeners.%s is not a map", rel, name)
		}
		if l["tls"] != nil || (l["type"] != nil && l["type"] != "tcp") {
			t.Fatalf("%s: listeners.%s is not plain TCP; the test's MQTT clients speak TCP only", rel, name)
		}
		l["bind"] = "127.0.0.1:0"
	}
	if len(listeners) != 1 {
		t.Fatalf("%s: %d listeners; the test reads one listener address from the log", rel, len(listeners))
	}
	section(doc, "admin")["bind"] = "127.0.0.1:0"

	for alias, v := range section(doc, "plugins") {
		p, ok := v.(map[string]any)
		if !ok {
			continue
		}
		raw, _ := p["url"].(string)
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != "hooks-node" {
			continue
		}
		if s.alias != "" {
			t.Fatalf("%s: plugins %s and %s both point at hooks-node", rel, s.alias, alias)
		}
		s.alias = alias
		p["url"] = s.hooksURL
		s.onError, _ = p["on-error"].(string)
	}
	if s.alias == "" {
		t.Fatalf("%s: no plugin url names the hooks-node service", rel)
	}
	// The test's expectations rest on these; say so if the file changes.
	for _, sec := range []string{"auth", "topic-check"} {
		ps, _ := section(doc, sec)["plugins"].([]any)
		if !slices.Contains(ps, any(s.alias)) {
			t.Fatalf("%s: %s.plugins %v does not list %s", rel, sec, ps, s.alias)
		}
	}
	if section(doc, "auth")["allow-anonymous"] != false {
		t.Fatalf("%s: auth.allow-anonymous is not false; the test expects unknown users to be refused", rel)
	}
	if section(doc, "topic-check")["enable"] != true {
		t.Fatalf("%s: topic-check.enable is not true", rel)
	}
	if s.onError != "" && s.onError != "deny" {
		t.Fatalf("%s: plugins.%s.on-error is %q; the outage phase expects deny", rel, s.alias, s.onError)
	}

	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

var varRef = regexp.MustCompile(`^\$\{([A-Z_][A-Z0-9_]*)(:?[-?][^}]*)?\}$`)

// composeEnv turns a service's compose environment into a process
// environment: ${VAR...} from vars, container paths to the repository files
// mounted there, other values as they are. PORT is left out (the caller sets
// it). MQTTD_* and the service's own names are removed from the inherited
// environment so the machine's settings do not leak in.
func composeEnv(t *testing.T, root, svc string, env map[string]string, volumes []string, vars map[string]string) []string {
	t.Helper()
	out := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		_, set := env[name]
		return set || name == "PORT" || strings.HasPrefix(name, "MQTTD_")
	})
	for name, v := range env {
		switch {
		case name == "PORT":
			continue
		case varRef.MatchString(v):
			ref := varRef.FindStringSubmatch(v)[1]
			val, ok := vars[ref]
			if !ok {
				t.Fatalf("docker-compose.yml: %s.environment.%s = %q: the test has no value for %s", svc, name, v, ref)
			}
			v = val
		case strings.HasPrefix(v, "/"):
			v = filepath.Join(root, filepath.FromSlash(hostPath(t, svc, volumes, v)))
			if _, err := os.Stat(v); err != nil {
				t.Fatalf("docker-compose.yml: %s.environment.%s: %v", svc, name, err)
			}
		}
		out = append(out, name+"="+v)
	}
	return out
}

// hostPath maps a container path to the repository path mounted there.
func hostPath(t *testing.T, svc string, volumes []string, inContainer string) string {
	t.Helper()
	for _, v := range volumes {
		p := strings.Split(v, ":")
		if len(p) < 2 {
			continue
		}
		host, ctr := strings.TrimPrefix(p[0], "./"), p[1]
		if inContainer == ctr {
			return host
		}
		if rest, ok := strings.CutPrefix(inContainer, ctr+"/"); ok {
			return host + "/" + rest
		}
	}
	t.Fatalf("docker-compose.yml: %s: %s is under no bind mount (volumes %v)", svc, inContainer, volumes)
	return ""
}

func readRepoFile(t *testing.T, dir, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "e2e-" + hex.EncodeToString(b)
}

// proc is a child process in its own process group, its output captured.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr logBuf
	done           chan struct{}
	err            error // set before done is closed
}

type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// startProc starts name; t.Cleanup kills its process group and, when the
// test failed, prints what it wrote.
func startProc(t *testing.T, name, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	newProcGroup(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		if err == nil {
			err = fmt.Errorf("exited with status 0")
		}
		p.err = err
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("---- %s (pid %d) stderr ----\n%s", name, p.cmd.Process.Pid, tail(p.stderr.String(), 150))
			t.Logf("---- %s (pid %d) stdout ----\n%s", name, p.cmd.Process.Pid, tail(p.stdout.String(), 150))
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *proc) kill(t *testing.T) {
	killProcGroup(p.cmd)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// exited is nil while the process runs, else how it ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// waitLog waits for a JSON line on stderr that match accepts.
func (p *proc) waitLog(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(startWithin)
	for {
		for _, line := range p.stderr.lines() {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && match(m) {
				return m
			}
		}
		if err := p.exited(); err != nil {
			t.Fatalf("%s %v before logging what the test waits for", p.name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log the expected line within %v", p.name, startWithin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it holds, failing the test with cond's last
// detail after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(u string) (int, string, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	code, body, err := httpGet(u)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", u, code, err, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
}

// pluginStatus is what mqttd's admin GET /plugins/{alias} shows.
type pluginStatus struct {
	Alias     string `json:"alias"`
	Ready     bool   `json:"ready"`
	Endpoints map[string]struct {
		BreakerState        string `json:"breaker_state"`
		ConsecutiveFailures uint32 `json:"consecutive_failures"`
	} `json:"endpoints"`
	Events struct {
		Sent    uint64            `json:"sent"`
		Dropped map[string]uint64 `json:"dropped"`
	} `json:"events"`
}

func (s *stack) pluginStatus(t *testing.T) pluginStatus {
	t.Helper()
	var st pluginStatus
	getJSON(t, s.admin+"/plugins/"+url.PathEscape(s.alias), &st)
	if st.Alias != s.alias {
		t.Fatalf("GET /plugins/%s: alias %q", s.alias, st.Alias)
	}
	return st
}

// metric is one sample of mqttd's /metrics.
type metric struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func (s *stack) metrics(t *testing.T) []metric {
	t.Helper()
	code, body, err := httpGet(s.admin + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	var out []metric
	for _, line := range strings.Split(body, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[lp[1]] = lp[2]
		}
		out = append(out, metric{name: m[1], labels: labels, value: v})
	}
	return out
}

// find returns the samples of name whose labels include want.
func find(ms []metric, name string, want map[string]string) []metric {
	var out []metric
	for _, m := range ms {
		if m.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if m.labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// sum adds the samples of name whose labels include want; found says
// whether there was any.
func sum(ms []metric, name string, want map[string]string) (total float64, found bool) {
	for _, m := range find(ms, name, want) {
		total += m.value
		found = true
	}
	return total, found
}
