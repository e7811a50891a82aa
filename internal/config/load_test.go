package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/testpki"
)

func TestLoadDefaultsWithoutFile(t *testing.T) {
	isolate(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.file, want.dir = c.file, c.dir
	if c.File() != "" {
		t.Errorf("File() = %q, want none", c.File())
	}
	got := *c
	got.envSet, got.warns, got.tlsConf = nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if l := c.Listeners["default"]; l.Type != "tcp" || l.Bind != ":1883" {
		t.Errorf("default listener = %+v, want tcp on :1883", l)
	}
	if host, _ := os.Hostname(); host != "" && c.Name != host {
		t.Errorf("name = %q, want the host name %q", c.Name, host)
	}
}

func TestLoadSearchPath(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	t.Chdir(dir)
	SearchPath = []string{"mqttd.yaml", "mqttd.toml"}
	writeFile(t, dir, "mqttd.toml", "name = \"from-toml\"\n")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-toml" || c.File() != "mqttd.toml" {
		t.Errorf("name %q from %q, want from-toml from mqttd.toml", c.Name, c.File())
	}
	writeFile(t, dir, "mqttd.yaml", "name: from-yaml\n")
	if c, err = Load(""); err != nil || c.Name != "from-yaml" {
		t.Errorf("with mqttd.yaml first in the path: name %v, err %v; want from-yaml", c, err)
	}
}

// The same configuration in each format loads to the same Config.
func TestLoadFormats(t *testing.T) {
	isolate(t)
	files := map[string]string{
		"c.yaml": `
name: node-1
listeners:
  default: {type: tcp, bind: "127.0.0.1:1883"}
  ws: {type: ws, bind: ":8080", path: /ws}
limits:
  max-packet-size: 256KiB
  max-inflight: 32
  connect-timeout: 2s
  max-keep-alive: 600
sys-interval: 0
admin: {bind: ""}
logging: {level: debug, format: json}
`,
		"c.yml": `
name: node-1
listeners:
  default: {bind: "127.0.0.1:1883"}
  ws: {type: WS, bind: ":8080", path: /ws}
limits: {max-packet-size: 262144, max-inflight: "32", connect-timeout: 2s, max-keep-alive: 600}
sys-interval: 0s
admin: {bind: ""}
logging: {level: DEBUG, format: json}
`,
		"c.toml": `
name = "node-1"
sys-interval = "0s"
[listeners.default]
type = "tcp"
bind = "127.0.0.1:1883"
[listeners.ws]
type = "ws"
bind = ":8080"
path = "/ws"
[limits]
max-packet-size = "256KiB"
max-inflight = 32
connect-timeout = "2s"
max-keep-alive = 600
[admin]
bind = ""
[logging]
level = "debug"
format = "json"
`,
		"c.json": `{
  "name": "node-1",
  "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:1883"}, "ws": {"type": "ws", "bind": ":8080", "path": "/ws"}},
  "limits": {"max-packet-size": "256KiB", "max-inflight": 32, "connect-timeout": "2s", "max-keep-alive": 600},
  "sys-interval": 0,
  "admin": {"bind": ""},
  "logging": {"level": "debug", "format": "json"}
}`,
	}
	dir := t.TempDir()
	want := Default()
	want.Name = "node-1"
	want.Listeners = map[string]Listener{
		"default": {Type: "tcp", Bind: "127.0.0.1:1883"},
		"ws":      {Type: "ws", Bind: ":8080", Path: "/ws"},
	}
	want.Limits.MaxPacketSize = 256 * KiB
	want.Limits.MaxInflight = 32
	want.Limits.ConnectTimeout = 2 * time.Second
	want.Limits.MaxKeepAlive = 600
	want.SysInterval = 0
	want.Admin.Bind = ""
	want.Logging = Logging{Level: "debug", Format: "json"}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			c, err := Load(writeFile(t, dir, name, content))
			if err != nil {
				t.Fatal(err)
			}
			got := *c
			w := want
			w.file, w.dir = got.file, got.dir
			got.envSet, got.warns, got.tlsConf = nil, nil, nil
			if !reflect.DeepEqual(got, w) {
				t.Errorf("\n got %+v\nwant %+v", got, w)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "mqttd.yaml", `
listeners:
  ws: {type: ws, bind: ":8080"}
limits:
  max-queued: 10
logging:
  level: warn
`)
	t.Setenv("MQTTD_LIMITS_MAX_INFLIGHT", "32")       // key absent from the file
	t.Setenv("MQTTD_LIMITS_MAX_QUEUED", "20")         // key present in the file
	t.Setenv("MQTTD_LIMITS_MAX_PACKET_SIZE", "2MiB")  // a size string
	t.Setenv("MQTTD_LIMITS_SESSION_EXPIRY", "1h")     // a duration
	t.Setenv("MQTTD_LOGGING_FORMAT", "json")          // section present, key absent
	t.Setenv("MQTTD_ADMIN_BIND", "")                  // empty disables
	t.Setenv("MQTTD_LISTENERS_WS_PATH", "/mqtt-ws")   // key absent inside a listener of the file
	t.Setenv("MQTTD_LISTENERS_DEFAULT_BIND", ":1999") // no such listener in the file: ignored, warned about
	t.Setenv("MQTTD_LIMITS_MAX_INFLITE", "7")         // a typo: ignored, warned about
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxInflight != 32 || c.Limits.MaxQueued != 20 || c.Limits.MaxPacketSize != 2*MiB ||
		c.Limits.SessionExpiry != time.Hour || c.Logging.Format != "json" || c.Logging.Level != "warn" ||
		c.Admin.Bind != "" {
		t.Errorf("overrides not applied: %+v", c)
	}
	if got := c.Listeners["ws"].Path; got != "/mqtt-ws" {
		t.Errorf("listeners.ws.path = %q, want /mqtt-ws", got)
	}
	if _, ok := c.Listeners["default"]; ok {
		t.Errorf("a listener appeared from the environment alone: %+v", c.Listeners)
	}
	if w := c.Warnings(); len(w) != 2 || !strings.Contains(w[0], "MQTTD_LIMITS_MAX_INFLITE names no config key") ||
		!strings.Contains(w[1], "MQTTD_LISTENERS_DEFAULT_BIND names no config key") {
		t.Errorf("warnings = %q, want one for MQTTD_LIMITS_MAX_INFLITE and one for MQTTD_LISTENERS_DEFAULT_BIND", w)
	}
	var out bytes.Buffer
	if err := c.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "max-inflight: 32 # from $MQTTD_LIMITS_MAX_INFLIGHT") {
		t.Errorf("printed config does not say where max-inflight came from:\n%s", out.String())
	}
}

func TestEnvOverridesDefaultListener(t *testing.T) {
	isolate(t)
	t.Setenv("MQTTD_LISTENERS_DEFAULT_BIND", "127.0.0.1:1999")
	t.Setenv("MQTTD_NAME", "from-env")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners["default"]; got.Bind != "127.0.0.1:1999" || got.Type != "tcp" {
		t.Errorf("default listener = %+v, want tcp on 127.0.0.1:1999", got)
	}
	if c.Name != "from-env" {
		t.Errorf("name = %q, want from-env", c.Name)
	}
}

func TestExpandInFile(t *testing.T) {
	isolate(t)
	t.Setenv("TEST_NODE", "node-7")
	t.Setenv("TEST_INFLIGHT", "12")
	t.Setenv("TEST_EMPTY", "")
	dir := t.TempDir()
	file := writeFile(t, dir, "mqttd.yaml", `
# ${NOT_EXPANDED_IN_COMMENTS}
name: ${TEST_NODE}
listeners:
  default: {bind: "${TEST_HOST:-127.0.0.1}:${TEST_PORT:-1883}"}
limits:
  max-inflight: ${TEST_INFLIGHT}
  connect-timeout: ${TEST_EMPTY:-3s}
admin:
  bind: "$${literal}"
`)
	_, err := Load(file)
	// admin.bind "${literal}" is not host:port: the escape survived expansion.
	if err == nil || !strings.Contains(err.Error(), `admin.bind: "${literal}" is not host:port`) {
		t.Fatalf("err = %v, want admin.bind \"${literal}\" rejected as not host:port", err)
	}
	os.WriteFile(file, bytes.Replace(must(os.ReadFile(file)), []byte("$${literal}"), []byte("${TEST_ADMIN:-}"), 1), 0o600)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "node-7" || c.Listeners["default"].Bind != "127.0.0.1:1883" || c.Limits.MaxInflight != 12 ||
		c.Limits.ConnectTimeout != 3*time.Second || c.Admin.Bind != "" {
		t.Errorf("expansion: %+v", c)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "EMPTY": "", "SECRET": "p@$$:w#rd"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain $HOME and $ alone", want: "plain $HOME and $ alone"},
		{in: "${A}", want: "x"},
		{in: "a${A}b${A}c", want: "axbxc"},
		{in: "${SECRET}", want: "p@$$:w#rd"},
		{in: "${EMPTY}", want: ""},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${UNSET:-def}", want: "def"},
		{in: "${UNSET:-}", want: ""},
		{in: "${A:-def}", want: "x"},
		{in: "$${A}", want: "${A}"},
		{in: "cost: $$${A}", want: "cost: $${A}"},
		{in: "${UNSET}", err: "environment variable UNSET is not set (set it, or give a default: ${UNSET:-value})"},
		{in: "${A", err: "has no closing }"},
		{in: "${}", err: "does not name an environment variable"},
		{in: "${9X}", err: "does not name an environment variable"},
	} {
		got, err := expand(tc.in, lookup)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("expand(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "1KiB": 1024, "1 KiB": 1024, "512kib": 512 * 1024, "1MiB": 1 << 20,
		"4MiB": 4 << 20, "1GiB": 1 << 30, "1KB": 1000, "1MB": 1000000, "2GB": 2000000000, "10B": 10,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1MX", "-1", "1.5MiB", "1 2", "99999999999GiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	for b, want := range map[ByteSize]string{0: "0", 1000: "1000", 1024: "1KiB", 1 << 20: "1MiB", 1536 * 1024: "1536KiB", 1 << 30: "1GiB"} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
	}
}

// Every error names the file (or the variable), the key, the value and
// what would be accepted.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	crt, key := testpki.SelfSigned(t, dir, "srv")
	garbage := writeFile(t, dir, "garbage.pem", "not pem\n")
	for _, tc := range []struct {
		name, file, content string
		env                 map[string]string
		want                []string
	}{
		{name: "unknown key", file: "mqttd.yaml", content: "limits:\n  max-inflite: 3\n",
			want: []string{`config: FILE: unknown key "limits.max-inflite" (did you mean "limits.max-inflight"? known: max-packet-size, max-connections, max-inflight,`}},
		{name: "unknown key in the wrong section", file: "mqttd.yaml", content: "max-inflight: 3\n",
			want: []string{`unknown key "max-inflight" (did you mean "limits.max-inflight"? known: name, listeners, limits,`}},
		{name: "unknown key far from any", file: "mqttd.yaml", content: "frobnicate: 3\n",
			want: []string{`config: FILE: unknown key "frobnicate" (known: name, listeners, limits, features, `, `, admin, logging, cluster)`}},
		{name: "unknown key in a listener", file: "mqttd.json", content: `{"listeners": {"ws": {"type": "ws", "bnd": ":1"}}}`,
			want: []string{`config: FILE: unknown key "listeners.ws.bnd" (did you mean "listeners.ws.bind"?`}},
		{name: "unknown key in tls", file: "mqttd.toml", content: "[listeners.s.tls]\ncertificate = \"x\"\n",
			want: []string{`unknown key "listeners.s.tls.certificate" (known: cert, key, client-ca)`}},
		{name: "every unknown key at once", file: "mqttd.yaml", content: "limits: {a: 1, b: 2}\n",
			want: []string{`unknown key "limits.a"`, `unknown key "limits.b"`}},
		{name: "section is a scalar", file: "mqttd.yaml", content: "limits: 5\n",
			want: []string{`config: FILE: limits: 5 is not a section (expected a map with keys max-packet-size,`}},
		{name: "listener is a scalar", file: "mqttd.yaml", content: "listeners:\n  default: \":1883\"\n",
			want: []string{`listeners.default: ":1883" is not a section (expected a map with keys type, bind, path, tls)`}},
		{name: "bad listener name", file: "mqttd.yaml", content: "listeners:\n  \"my ws\": {bind: \":1\"}\n",
			want: []string{`listeners: "my ws" is not a valid name (use lower-case letters, digits, - and _)`}},
		{name: "duration without unit", file: "mqttd.yaml", content: "limits:\n  connect-timeout: \"5\"\n",
			want: []string{`config: FILE: limits.connect-timeout: "5" is not a duration (e.g. 500ms, 2s`}},
		{name: "duration as a bare number", file: "mqttd.yaml", content: "shutdown-grace: 5\n",
			want: []string{`config: FILE: shutdown-grace: 5 is not a duration (e.g. 500ms, 2s`}},
		{name: "duration from the environment", file: "mqttd.yaml", content: "name: n\n",
			env:  map[string]string{"MQTTD_LIMITS_CONNECT_TIMEOUT": "5"},
			want: []string{`config: $MQTTD_LIMITS_CONNECT_TIMEOUT: limits.connect-timeout: "5" is not a duration (e.g. 500ms, 2s`}},
		{name: "not an integer", file: "mqttd.yaml", content: "limits:\n  max-inflight: lots\n",
			want: []string{`config: FILE: limits.max-inflight: "lots" is not an integer (e.g. 64)`}},
		{name: "not a size", file: "mqttd.yaml", content: "limits:\n  max-packet-size: 1MX\n",
			want: []string{`config: FILE: limits.max-packet-size: "1MX" is not a size (e.g. 1048576, 512KiB, 1MiB, 1MB)`}},
		{name: "several bad values", file: "mqttd.yaml", content: "limits:\n  max-inflight: x\n  max-queued: y\n",
			want: []string{`limits.max-inflight: "x"`, `limits.max-queued: "y"`}},
		{name: "listener type", file: "mqttd.yaml", content: "listeners:\n  q: {type: udp, bind: \":1\"}\n",
			want: []string{`config: FILE: listeners.q.type: "udp" is not a listener type (use tcp or ws; add tls: for MQTTS or WSS)`}},
		{name: "listener without bind", file: "mqttd.yaml", content: "listeners:\n  q: {type: tcp}\n",
			want: []string{`config: FILE: listeners.q.bind: is missing (set host:port, e.g. ":1883"`}},
		{name: "bind without port", file: "mqttd.yaml", content: "listeners:\n  q: {bind: \"1883\"}\n",
			want: []string{`listeners.q.bind: "1883" is not host:port (e.g. ":1883"`}},
		{name: "bind with a bad port", file: "mqttd.yaml", content: "listeners:\n  q: {bind: \":mqtt\"}\n",
			want: []string{`listeners.q.bind: ":mqtt" has no valid port`}},
		{name: "two listeners on one port", file: "mqttd.yaml", content: "listeners:\n  a: {bind: \":1883\"}\n  b: {type: ws, bind: \":1883\"}\n",
			want: []string{`listeners.b.bind: ":1883" is also the bind of listeners.a`}},
		{name: "no listener", file: "mqttd.yaml", content: "listeners: {}\n",
			want: []string{`config: FILE: listeners: no listener is defined`}},
		{name: "path on tcp", file: "mqttd.yaml", content: "listeners:\n  a: {bind: \":1\", path: /mqtt}\n",
			want: []string{`listeners.a.path: "/mqtt" is set but only a ws listener has a path (remove it, or set type: ws)`}},
		{name: "ws path without slash", file: "mqttd.yaml", content: "listeners:\n  a: {type: ws, bind: \":1\", path: mqtt}\n",
			want: []string{`listeners.a.path: "mqtt" does not start with / (e.g. /mqtt)`}},
		{name: "tls cert without key", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {cert: srv.crt}}\n",
			want: []string{`config: FILE: listeners.s.tls.key: is missing: tls.cert is set, so the listener needs its private key`}},
		{name: "tls key without cert", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {key: srv.key}}\n",
			want: []string{`listeners.s.tls.cert: is missing: tls.key is set`}},
		{name: "client-ca without cert", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {client-ca: ca.crt}}\n",
			want: []string{`listeners.s.tls.cert: is missing: tls.client-ca asks for mutual TLS`}},
		{name: "unreadable cert file", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {cert: nope.crt, key: " + key + "}}\n",
			want: []string{`config: FILE: listeners.s.tls.cert: cannot read DIR/nope.crt: no such file (relative paths are resolved against the config file's directory)`}},
		{name: "cert is not PEM", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {cert: garbage.pem, key: srv.key}}\n",
			want: []string{`config: FILE: listeners.s.tls: cert garbage.pem and key srv.key do not load:`}},
		{name: "client-ca is not PEM", file: "mqttd.yaml", content: "listeners:\n  s: {bind: \":8883\", tls: {cert: " + crt + ", key: " + key + ", client-ca: " + garbage + "}}\n",
			want: []string{`listeners.s.tls.client-ca: ` + garbage + ` holds no PEM certificate`}},
		{name: "log level", file: "mqttd.yaml", content: "logging:\n  level: verbose\n",
			want: []string{`config: FILE: logging.level: "verbose" is not a log level (use debug, info, warn or error)`}},
		{name: "log format", file: "mqttd.yaml", content: "logging:\n  format: xml\n",
			want: []string{`config: FILE: logging.format: "xml" is not a log format (use text or json)`}},
		{name: "limit out of range", file: "mqttd.yaml", content: "limits:\n  max-inflight: 0\n",
			want: []string{`config: FILE: limits.max-inflight: 0 is out of range (use 1 to 65535)`}},
		{name: "packet size out of range", file: "mqttd.yaml", content: "limits:\n  max-packet-size: 1GiB\n",
			want: []string{`limits.max-packet-size: 1GiB is out of range (use 64 to 268435460 bytes, e.g. 1MiB)`}},
		{name: "connect size out of range", file: "mqttd.yaml", content: "limits:\n  max-connect-size: 10\n",
			want: []string{`limits.max-connect-size: 10 is out of range (use 64 to 268435460 bytes, e.g. 64KiB)`}},
		{name: "queued bytes out of range", file: "mqttd.yaml", content: "limits:\n  max-queued-bytes: 0\n",
			want: []string{`limits.max-queued-bytes: 0 is out of range (use at least 1, e.g. 16MiB)`}},
		{name: "retained bounds negative", file: "mqttd.yaml", content: "limits:\n  max-retained: -1\n",
			want: []string{`limits.max-retained: -1 is out of range (use 0 to 2147483647)`}},
		{name: "retained bytes negative", file: "mqttd.yaml", content: "limits:\n  max-retained-bytes: -5\n",
			want: []string{`limits.max-retained-bytes: -5 is not a size`}},
		{name: "keep-alive out of range", file: "mqttd.yaml", content: "limits:\n  max-keep-alive: 70000\n",
			want: []string{`limits.max-keep-alive: 70000 is out of range (use 0 to 65535)`}},
		{name: "zero grace", file: "mqttd.yaml", content: "shutdown-grace: 0s\n",
			want: []string{`config: FILE: shutdown-grace: 0s must be positive (e.g. 10s)`}},
		{name: "negative sys interval", file: "mqttd.yaml", content: "sys-interval: -1s\n",
			want: []string{`sys-interval: -1s is negative`}},
		{name: "negative slow-subscriber timeout", file: "mqttd.yaml", content: "limits:\n  slow-subscriber-timeout: -1s\n",
			want: []string{`limits.slow-subscriber-timeout: -1s is negative`}},
		{name: "admin bind", file: "mqttd.yaml", content: "admin:\n  bind: localhost\n",
			want: []string{`admin.bind: "localhost" is not host:port (e.g. ":1883" or "127.0.0.1:1883") (or "" to disable the admin listener)`}},
		{name: "admin on an mqtt port", file: "mqttd.yaml", content: "admin:\n  bind: \":1883\"\n",
			want: []string{`admin.bind: ":1883" is also the bind of listeners.default`}},
		{name: "empty name from env", file: "mqttd.yaml", content: "",
			env:  map[string]string{"MQTTD_NAME": ""},
			want: []string{`config: $MQTTD_NAME: name: is empty`}},
		{name: "missing variable", file: "mqttd.yaml", content: "name: ${MQTTD_TEST_UNSET_VAR}\n",
			want: []string{`config: FILE: name: ${MQTTD_TEST_UNSET_VAR}: environment variable MQTTD_TEST_UNSET_VAR is not set (set it, or give a default: ${MQTTD_TEST_UNSET_VAR:-value})`}},
		{name: "file type", file: "mqttd.ini", content: "name = x\n",
			want: []string{`config: FILE: unknown file type ".ini" (name the file .yaml, .yml, .toml or .json)`}},
		{name: "bad yaml", file: "mqttd.yaml", content: "limits:\n  max-inflight: [\n",
			want: []string{`config: FILE: not valid YAML: yaml: line`}},
		{name: "bad toml", file: "mqttd.toml", content: "name = \n",
			want: []string{`config: FILE: line 1 column`, `not valid TOML`}},
		{name: "bad json", file: "mqttd.json", content: "{\n\"name\": \"x\",\n}\n",
			want: []string{`config: FILE: line 3: not valid JSON:`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			sub := t.TempDir()
			writeFile(t, sub, "srv.key", string(must(os.ReadFile(key))))
			writeFile(t, sub, "garbage.pem", "not pem\n")
			path := writeFile(t, sub, tc.file, tc.content)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded, want an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "FILE", path)
				w = strings.ReplaceAll(w, "DIR", sub)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	isolate(t)
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if err == nil || err.Error() != "config: "+path+": no such file (check the path given with --config)" {
		t.Errorf("err = %v", err)
	}
}

func TestLoadTLS(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	testpki.SelfSigned(t, filepath.Join(dir, "certs"), "srv")
	testpki.SelfSigned(t, filepath.Join(dir, "certs"), "ca")
	path := writeFile(t, dir, "mqttd.yaml", `
listeners:
  plain: {bind: ":1883"}
  tls: {bind: ":8883", tls: {cert: certs/srv.crt, key: certs/srv.key}}
  mtls: {type: ws, bind: ":8443", tls: {cert: certs/srv.crt, key: certs/srv.key, client-ca: certs/ca.crt}}
`)
	t.Chdir(t.TempDir()) // relative cert paths resolve against the file, not the working directory
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if tc := c.ListenerTLS("plain"); tc != nil {
		t.Errorf("plain listener has TLS")
	}
	tc := c.ListenerTLS("tls")
	if tc == nil || tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 1 || tc.ClientAuth != tls.NoClientCert {
		t.Errorf("tls listener: %+v", tc)
	}
	mt := c.ListenerTLS("mtls")
	if mt == nil || mt.ClientAuth != tls.RequireAndVerifyClientCert || mt.ClientCAs == nil || mt.MinVersion != tls.VersionTLS12 {
		t.Errorf("mtls listener: %+v", mt)
	}
	if c.Listeners["mtls"].Path != "/mqtt" {
		t.Errorf("ws path default = %q, want /mqtt", c.Listeners["mtls"].Path)
	}
	if c.ListenerTLS("tls") == tc {
		t.Errorf("ListenerTLS returned a shared *tls.Config")
	}
}
