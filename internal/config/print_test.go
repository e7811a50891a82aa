package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/testpki"
)

func TestWriteYAMLRoundTrips(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	testpki.SelfSigned(t, dir, "srv")
	path := writeFile(t, dir, "in.yaml", `
name: n1
listeners:
  default: {bind: ":1883"}
  wss: {type: ws, bind: "127.0.0.1:8443", tls: {cert: srv.crt, key: srv.key, client-ca: srv.crt}}
limits: {max-packet-size: 1000, session-expiry: 90m, max-outbound-bytes: 3MiB}
sys-interval: 0s
`)
	t.Setenv("MQTTD_LIMITS_MAX_INFLIGHT", "9")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"# source: " + path,
		"max-packet-size: 1000\n",
		"max-outbound-bytes: 3MiB\n",
		"session-expiry: 1h30m\n",
		"max-inflight: 9 # from $MQTTD_LIMITS_MAX_INFLIGHT\n",
		"key: srv.key\n", // the path is shown ...
	} {
		if !strings.Contains(text, want) {
			t.Errorf("printed config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, "CERTIFICATE") { // ... never the contents
		t.Errorf("printed config holds PEM material:\n%s", text)
	}
	if !strings.Contains(text, "  default:\n    type: tcp\n    bind: :1883\n  wss:\n") {
		t.Errorf("a plain tcp listener does not print as just type and bind:\n%s", text)
	}

	// What is printed loads back to the same configuration.
	os.Unsetenv("MQTTD_LIMITS_MAX_INFLIGHT")
	again, err := Load(writeFile(t, dir, "out.yaml", text))
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, text)
	}
	a, b := *c, *again
	for _, x := range []*Config{&a, &b} {
		x.file, x.envSet, x.warns, x.tlsConf = "", nil, nil, nil
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip:\n got %+v\nwant %+v", b, a)
	}
}

func TestMasked(t *testing.T) {
	isolate(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Masked()
	limits, _ := m["limits"].(map[string]any)
	if limits["connect-timeout"] != "10s" || limits["max-packet-size"] != "1MiB" || limits["max-inflight"] != 256 {
		t.Errorf("limits = %#v", limits)
	}
	ls, _ := m["listeners"].(map[string]any)
	if d, _ := ls["default"].(map[string]any); d["bind"] != ":1883" || d["type"] != "tcp" {
		t.Errorf("listeners = %#v", ls)
	}

	// Secrets are masked by key name wherever they appear, including in
	// free-form blocks such as a plugin's config.
	for key, want := range map[string]string{
		"plugins.accounts.secret": masked, "auth.password": masked, "x.api-token": masked,
		"plugins.accounts.url": "http://hooks:3000", "listeners.s.tls.key": "http://hooks:3000",
	} {
		if got := leafNode(reflect.ValueOf("http://hooks:3000"), key).Value; got != want {
			t.Errorf("%s printed as %q, want %q", key, got, want)
		}
	}
	if got := leafNode(reflect.ValueOf(""), "plugins.a.secret").Value; got != "" {
		t.Errorf("an empty secret printed as %q, want empty (so an unset secret is visible)", got)
	}
	free := leafNode(reflect.ValueOf(map[string]any{"realm": "f7", "nested": map[string]any{"password": "hunter2"}}), "plugins.a.config")
	var got map[string]any
	if err := free.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["realm"] != "f7" || got["nested"].(map[string]any)["password"] != masked {
		t.Errorf("free-form block printed as %#v", got)
	}
}

// The reference documents every key, and the sample config mentions every
// key and loads.
func TestReferenceAndExample(t *testing.T) {
	isolate(t)
	example := filepath.Join("..", "..", "examples", "mqttd.yaml")
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(example); err != nil {
		t.Errorf("examples/mqttd.yaml does not load: %v", err)
	}
	ref := Reference()
	keys := schemaKeys(reflect.TypeFor[Config](), "")
	var got []string
	for _, k := range ref {
		if k.Doc == "" {
			t.Errorf("key %s has no doc tag", k.Key)
		}
		if k.Env != "" {
			got = append(got, k.Key)
		}
		last := k.Key[strings.LastIndexByte(k.Key, '.')+1:]
		if !bytes.Contains(text, []byte(last+":")) {
			t.Errorf("examples/mqttd.yaml does not mention %s", k.Key)
		}
	}
	if !reflect.DeepEqual(got, keys) {
		t.Errorf("reference keys %v, schema keys %v", got, keys)
	}
	var md bytes.Buffer
	if err := WriteReference(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `limits.max-inflight` | `256` | `MQTTD_LIMITS_MAX_INFLIGHT` |",
		"| `listeners.<name>.tls.client-ca` | `\"\"` | `MQTTD_LISTENERS_<NAME>_TLS_CLIENT_CA` |",
		"| `admin.bind` | `127.0.0.1:9180` | `MQTTD_ADMIN_BIND` |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("reference table lacks %q:\n%s", want, md.String())
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"limits.max-inflight":       "MQTTD_LIMITS_MAX_INFLIGHT",
		"admin.bind":                "MQTTD_ADMIN_BIND",
		"listeners.my-ws.path":      "MQTTD_LISTENERS_MY_WS_PATH",
		"auth.allow-anonymous":      "MQTTD_AUTH_ALLOW_ANONYMOUS",
		"logging.format":            "MQTTD_LOGGING_FORMAT",
		"listeners.s.tls.client-ca": "MQTTD_LISTENERS_S_TLS_CLIENT_CA",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}
