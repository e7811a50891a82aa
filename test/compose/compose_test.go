// Package compose_test checks docker-compose.yml without a Docker engine: the
// services, ports, environment, health checks and start order; that every
// file it names exists; that it agrees with the mounted mqttd config, with the
// Dockerfiles and with what examples/hooks-node reads; and that the mounted
// config loads. When Debian's docker-compose is installed, it also has it
// validate the file.
package compose_test

import (
	"bytes"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mqttd/mqttd/internal/config"
)

// root is the repository root, two levels up from this package.
var root = filepath.Join("..", "..")

// The parts of a compose file this stack uses. Forms are fixed on purpose
// (build as a path, environment as a map, depends_on in the long form): the
// test fails on a form it does not read rather than skip it.
type composeFile struct {
	Services map[string]service `yaml:"services"`
}

type service struct {
	Build       string                `yaml:"build"`
	Command     []string              `yaml:"command"`
	Ports       []string              `yaml:"ports"`
	Volumes     []string              `yaml:"volumes"`
	Environment map[string]string     `yaml:"environment"`
	EnvFile     any                   `yaml:"env_file"`
	Healthcheck healthcheck           `yaml:"healthcheck"`
	DependsOn   map[string]dependency `yaml:"depends_on"`
}

type healthcheck struct {
	Test     []string `yaml:"test"`
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	Retries  int      `yaml:"retries"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

// The mounted mqttd config, read raw (as compose hands it over, ${...} not
// expanded), for the values the stack must agree with.
type mqttdFile struct {
	Listeners map[string]struct {
		Bind string `yaml:"bind"`
	} `yaml:"listeners"`
	Plugins map[string]struct {
		URL    string `yaml:"url"`
		Secret string `yaml:"secret"`
	} `yaml:"plugins"`
	Admin struct {
		Bind string `yaml:"bind"`
	} `yaml:"admin"`
	Storage struct {
		Dir string `yaml:"dir"`
	} `yaml:"storage"`
}

const (
	composePath   = "docker-compose.yml"
	mqttdConfigIn = "/etc/mqttd/mqttd.yaml" // where the image looks (Dockerfile)
	mqttdStoreIn  = "/var/lib/mqttd/data"   // the state volume: WORKDIR /var/lib/mqttd + data/ (storage.dir data/store, spools data/events)
	secretVar     = "HOOKS_SECRET"
)

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return b
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, composePath), &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	return c
}

func getService(t *testing.T, c composeFile, name string) service {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("%s: no service %q", composePath, name)
	}
	return s
}

// mount is one bind mount, host:container[:ro].
type mount struct{ host, container, mode string }

func mounts(t *testing.T, s service) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		p := strings.Split(v, ":")
		if len(p) == 2 && volumeName.MatchString(p[0]) {
			continue // a named volume: see namedVolumes
		}
		if len(p) < 2 || len(p) > 3 || !strings.HasPrefix(p[0], "./") {
			t.Fatalf("volume %q: want ./host/path:/container/path[:ro] (a bind mount relative to the repo)", v)
		}
		m := mount{host: p[0], container: p[1]}
		if len(p) == 3 {
			m.mode = p[2]
		}
		out = append(out, m)
	}
	return out
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// namedVolumes maps the container path of each named volume of s to the
// volume's name.
func namedVolumes(s service) map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		if p := strings.Split(v, ":"); len(p) == 2 && volumeName.MatchString(p[0]) {
			out[p[1]] = p[0]
		}
	}
	return out
}

// hostPath maps a container path to the repo file behind it, through the
// service's bind mounts.
func hostPath(t *testing.T, s service, inContainer string) string {
	t.Helper()
	for _, m := range mounts(t, s) {
		if inContainer == m.container {
			return m.host
		}
		if rest, ok := strings.CutPrefix(inContainer, m.container+"/"); ok {
			return m.host + "/" + rest
		}
	}
	t.Fatalf("%s is not under any bind mount of the service (volumes: %v)", inContainer, s.Volumes)
	return ""
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

func loadMqttdFile(t *testing.T, rel string) mqttdFile {
	t.Helper()
	var m mqttdFile
	if err := yaml.Unmarshal(readFile(t, rel), &m); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return m
}

func TestServices(t *testing.T) {
	c := loadCompose(t)
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"hooks-node", "mqttd"}; !slices.Equal(names, want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
}

func TestBuildContextsAndDockerfiles(t *testing.T) {
	c := loadCompose(t)
	want := map[string]string{"mqttd": ".", "hooks-node": "./examples/hooks-node"}
	for name, ctx := range want {
		s := getService(t, c, name)
		if filepath.Clean(s.Build) != filepath.Clean(ctx) {
			t.Errorf("%s: build %q, want %q", name, s.Build, ctx)
		}
		for _, f := range []string{"Dockerfile", ".dockerignore"} {
			if _, err := os.Stat(filepath.Join(root, ctx, f)); err != nil {
				t.Errorf("%s: build context %s has no %s: %v", name, ctx, f, err)
			}
		}
	}

	mqttdDocker := string(readFile(t, "Dockerfile"))
	for _, re := range []string{
		`(?m)^FROM golang:` + regexp.QuoteMeta(goModVersion(t)) + ` AS build$`,
		`CGO_ENABLED=0 go build .* \./cmd/mqttd`,
		`(?m)^FROM gcr\.io/distroless/static[^ ]*:nonroot$`,
		`(?m)^USER nonroot`,
		`(?m)^WORKDIR /var/lib/mqttd$`,
		`(?m)^VOLUME ` + regexp.QuoteMeta(mqttdStoreIn) + `$`,
		`(?m)^COPY --from=build --chown=65532:65532 \S+ ` + regexp.QuoteMeta(mqttdStoreIn) + `$`,
		`(?m)^EXPOSE 1883 9180$`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/mqttd"\]$`,
	} {
		if !regexp.MustCompile(re).MatchString(mqttdDocker) {
			t.Errorf("Dockerfile: nothing matches %s", re)
		}
	}
	node := string(readFile(t, "examples/hooks-node/Dockerfile"))
	for _, re := range []string{
		`(?m)^FROM node:20-alpine$`,
		`(?m)^COPY package\.json package-lock\.json \./$`,
		`npm ci --omit=dev`,
		`(?m)^USER node$`,
		`(?m)^HEALTHCHECK .*\n?.*/healthz`,
	} {
		if !regexp.MustCompile(re).MatchString(node) {
			t.Errorf("examples/hooks-node/Dockerfile: nothing matches %s", re)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "examples", "hooks-node", "package-lock.json")); err != nil {
		t.Errorf("examples/hooks-node/package-lock.json (npm ci needs it): %v", err)
	}
}

// TestMqttd checks the broker service against its mounted config: the
// published ports are the listener's and the admin listener's, the health
// check asks /readyz on the admin port, and it starts after hooks-node is
// healthy.
func TestMqttd(t *testing.T) {
	c := loadCompose(t)
	s := getService(t, c, "mqttd")

	cfgHost := hostPath(t, s, mqttdConfigIn)
	if cfgHost != "./examples/compose/mqttd.yaml" {
		t.Errorf("%s is mounted from %s, want ./examples/compose/mqttd.yaml", mqttdConfigIn, cfgHost)
	}
	for _, m := range mounts(t, s) {
		if m.container == mqttdConfigIn && m.mode != "ro" {
			t.Errorf("%s is mounted %q, want read-only (:ro)", mqttdConfigIn, m.mode)
		}
	}
	if !slices.Equal(s.Command, []string{"--config", mqttdConfigIn}) {
		t.Errorf("command %v, want [--config %s] (a missing mount must stop the broker, not start it on defaults)", s.Command, mqttdConfigIn)
	}

	cfg := loadMqttdFile(t, cfgHost)
	if len(cfg.Listeners) != 1 {
		t.Fatalf("%s: %d listeners, want 1 (the test maps it to the published port)", cfgHost, len(cfg.Listeners))
	}
	var mqttPort string
	for _, l := range cfg.Listeners {
		mqttPort = port(t, l.Bind)
	}
	adminPort := port(t, cfg.Admin.Bind)
	if host, _, _ := net.SplitHostPort(cfg.Admin.Bind); host != "0.0.0.0" && host != "" {
		t.Errorf("%s: admin.bind %q is not reachable from outside the container (use 0.0.0.0)", cfgHost, cfg.Admin.Bind)
	}
	wantPorts := []string{"127.0.0.1:" + mqttPort + ":" + mqttPort, "127.0.0.1:" + adminPort + ":" + adminPort}
	if !slices.Equal(s.Ports, wantPorts) {
		t.Errorf("ports %v, want %v (the host's loopback only: the demo passwords are public)", s.Ports, wantPorts)
	}

	readyz := "http://127.0.0.1:" + adminPort + "/readyz"
	if hc := s.Healthcheck.Test; len(hc) < 2 || hc[0] != "CMD" || hc[len(hc)-1] != readyz {
		t.Errorf("healthcheck %v, want [CMD ... %s]", hc, readyz)
	} else if hc[1] == "/usr/local/bin/wget" && !strings.Contains(string(readFile(t, "Dockerfile")), " /usr/local/bin/wget") {
		t.Errorf("healthcheck runs /usr/local/bin/wget, which the Dockerfile does not install")
	}
	checkTiming(t, "mqttd", s.Healthcheck)
	if d := cfg.Storage.Dir; d != "" && !strings.HasPrefix(inWorkdir(d)+"/", mqttdStoreIn+"/") {
		t.Errorf("%s: storage.dir %q is not under %s, where the state volume is mounted", cfgHost, d, mqttdStoreIn)
	}
	if _, ok := namedVolumes(s)[mqttdStoreIn]; !ok {
		t.Errorf("volumes %v: no named volume at %s: the store would be lost with the container", s.Volumes, mqttdStoreIn)
	}
	if d, ok := s.DependsOn["hooks-node"]; !ok || d.Condition != "service_healthy" {
		t.Errorf("depends_on %v, want hooks-node: {condition: service_healthy}", s.DependsOn)
	}
}

// inWorkdir is where the container finds a path of its config: a relative
// one is under the image's WORKDIR.
func inWorkdir(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join("/var/lib/mqttd", p)
}

func checkTiming(t *testing.T, name string, h healthcheck) {
	t.Helper()
	if h.Interval == "" || h.Timeout == "" || h.Retries < 1 {
		t.Errorf("%s: healthcheck wants interval, timeout and retries (got %+v)", name, h)
	}
}

// envRead matches how examples/hooks-node/src/config.js reads a variable.
var envRead = regexp.MustCompile(`\benv\.([A-Z][A-Z0-9_]*)\b`)

// TestHooksNode checks the plugin service: the variables it is given are ones
// it reads, its files exist behind its mounts, its health check and port
// agree with PORT, and the broker's plugin URL points at it.
func TestHooksNode(t *testing.T) {
	c := loadCompose(t)
	s := getService(t, c, "hooks-node")

	read := map[string]bool{}
	for _, m := range envRead.FindAllStringSubmatch(string(readFile(t, "examples/hooks-node/src/config.js")), -1) {
		read[m[1]] = true
	}
	if !read["PORT"] || !read[secretVar] {
		t.Fatalf("found no env.PORT / env.%s in examples/hooks-node/src/config.js; the test's pattern is stale", secretVar)
	}
	for name := range s.Environment {
		if !read[name] {
			t.Errorf("environment %s: examples/hooks-node does not read it (it reads %v)", name, slices.Sorted(maps.Keys(read)))
		}
	}
	for _, name := range []string{"PORT", secretVar, "USERS_FILE", "ACL_FILE"} {
		if _, ok := s.Environment[name]; !ok {
			t.Errorf("environment: %s is not set", name)
		}
	}
	for _, name := range []string{"USERS_FILE", "ACL_FILE"} {
		if s.Environment[name] == "" {
			continue
		}
		p := hostPath(t, s, s.Environment[name])
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.IsDir() {
			t.Errorf("%s=%s is %s in the repo, which is not a file: %v", name, s.Environment[name], p, err)
		}
	}
	for _, m := range mounts(t, s) {
		if m.mode != "ro" {
			t.Errorf("volume %s:%s should be read-only (:ro)", m.host, m.container)
		}
	}

	p := s.Environment["PORT"]
	if want := []string{"127.0.0.1:" + p + ":" + p}; !slices.Equal(s.Ports, want) {
		t.Errorf("ports %v, want %v (loopback only: it is the broker's backend)", s.Ports, want)
	}
	healthz := "http://127.0.0.1:" + p + "/healthz"
	if hc := s.Healthcheck.Test; len(hc) < 2 || hc[0] != "CMD" || hc[len(hc)-1] != healthz {
		t.Errorf("healthcheck %v, want [CMD ... %s]", hc, healthz)
	}
	checkTiming(t, "hooks-node", s.Healthcheck)

	cfg := loadMqttdFile(t, "examples/compose/mqttd.yaml")
	plugin, ok := cfg.Plugins["hooks"]
	if !ok {
		t.Fatalf("examples/compose/mqttd.yaml: no plugins.hooks")
	}
	u, err := url.Parse(plugin.URL)
	if err != nil || u.Scheme != "http" || u.Hostname() != "hooks-node" || u.Port() != p {
		t.Errorf("plugins.hooks.url %q, want http://hooks-node:%s (the service name and its PORT)", plugin.URL, p)
	}
}

// TestSecret checks that one secret reaches both ends: compose takes it from
// .env (whose template exists), refuses to start without it, and the broker's
// config signs with it.
func TestSecret(t *testing.T) {
	c := loadCompose(t)
	guard := regexp.MustCompile(`^\$\{` + secretVar + `:\?[^}]+\}$`)
	for _, name := range []string{"mqttd", "hooks-node"} {
		s := getService(t, c, name)
		if v := s.Environment[secretVar]; !guard.MatchString(v) {
			t.Errorf("%s: environment %s = %q, want ${%s:?message} (compose stops, saying why, when .env lacks it)", name, secretVar, v, secretVar)
		}
		if s.EnvFile != nil {
			t.Errorf("%s: env_file is set; the secret comes from .env through ${%s}", name, secretVar)
		}
	}
	example := string(readFile(t, ".env.example"))
	if !regexp.MustCompile(`(?m)^` + secretVar + `=.+$`).MatchString(example) {
		t.Errorf(".env.example does not set %s", secretVar)
	}
	if !strings.Contains(string(readFile(t, ".dockerignore")), "\n.env\n") {
		t.Errorf(".dockerignore does not exclude .env (the secret would land in the build context)")
	}
	if got := loadMqttdFile(t, "examples/compose/mqttd.yaml").Plugins["hooks"].Secret; got != "${"+secretVar+"}" {
		t.Errorf("plugins.hooks.secret = %q, want ${%s}", got, secretVar)
	}
}

// TestMountedConfigLoads loads the mounted config with the broker's own
// loader, as the container will.
func TestMountedConfigLoads(t *testing.T) {
	t.Setenv(secretVar, "compose-test-secret")
	cfg, err := config.Load(filepath.Join(root, "examples", "compose", "mqttd.yaml"))
	if err != nil {
		for _, key := range []string{"plugins", "auth", "topic-check"} {
			if strings.Contains(err.Error(), `unknown key "`+key+`"`) {
				t.Skipf("internal/config does not know the plugin keys yet (docs/design.md §3.1): %v", err)
			}
		}
		t.Fatalf("examples/compose/mqttd.yaml does not load: %v", err)
	}
	if cfg.Admin.Bind != "0.0.0.0:9180" {
		t.Errorf("admin.bind = %q after loading", cfg.Admin.Bind)
	}
}

// TestDockerCompose has Debian's docker-compose validate the file: with the
// .env template it must pass, and without HOOKS_SECRET it must refuse with
// the guard's message.
func TestDockerCompose(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed (apt-get install docker-compose); the static checks above still ran")
	}
	run := func(envFile string) (string, error) {
		cmd := exec.Command(bin, "--env-file", envFile, "-f", composePath, "config", "-q")
		cmd.Dir = root
		cmd.Env = withoutVar(os.Environ(), secretVar)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := run(".env.example"); err != nil {
		t.Errorf("docker-compose --env-file .env.example config -q: %v\n%s", err, out)
	}
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(empty)
	if err == nil || !strings.Contains(out, secretVar+" is not set") {
		t.Errorf("docker-compose without %s: err %v, output %q; want a refusal naming it", secretVar, err, out)
	}
}

func withoutVar(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

// goModVersion is go.mod's toolchain version, else its go version: the Go
// image the Dockerfile builds with must be at that patch level, or the
// build tries to download the toolchain (and fails offline).
func goModVersion(t *testing.T) string {
	t.Helper()
	mod := string(readFile(t, "go.mod"))
	if m := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindStringSubmatch(mod); m != nil {
		return m[1]
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindStringSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no toolchain line and no go line with a patch level")
	}
	return m[1]
}
