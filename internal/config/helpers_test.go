package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// isolate makes Load see no config file in the search path and no MQTTD_
// variable from the machine running the tests.
func isolate(t *testing.T) {
	t.Helper()
	old := SearchPath
	SearchPath = []string{filepath.Join(t.TempDir(), "none.yaml")}
	t.Cleanup(func() { SearchPath = old })
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name) // t.Setenv restores it afterwards
		}
	}
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
