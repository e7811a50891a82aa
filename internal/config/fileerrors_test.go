package config

import (
	"strings"
	"testing"
)

// The path of the config file can come from --config or $MQTTD_CONFIG; a
// problem with the file itself says which, and what to do.
func TestLoadFileProblems(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, env, want string
	}{
		{name: "directory via --config", path: dir,
			want: "config: " + dir + ": is a directory, not a config file (--config must name the file itself, e.g. " + dir + "/mqttd.yaml)"},
		{name: "directory via env", env: dir,
			want: "config: " + dir + ": is a directory, not a config file ($MQTTD_CONFIG must name the file itself, e.g. " + dir + "/mqttd.yaml)"},
		{name: "missing via env", env: dir + "/nope.yaml",
			want: "config: " + dir + "/nope.yaml: no such file (the path came from $MQTTD_CONFIG: fix it, or unset it to use the search path)"},
		{name: "missing via --config", path: dir + "/nope.yaml",
			want: "config: " + dir + "/nope.yaml: no such file (check the path given with --config)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(EnvConfigFile, tc.env)
			}
			_, err := Load(tc.path)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load(%q) with $MQTTD_CONFIG=%q:\n got %v\nwant %s", tc.path, tc.env, err, tc.want)
			}
		})
	}
}

// An unclosed { or [ is reported at its own line, not at the line where
// the parser noticed (the first line of the enclosing block).
func TestLoadUnclosedBracket(t *testing.T) {
	isolate(t)
	for _, tc := range []struct{ yaml, want string }{
		{"listeners:\n  default: {type: tcp, bind: \":1883\"\nlimits:\n  max-inflight: 3\n", "line 2: not valid YAML: this { is never closed (add the matching })"},
		{"# c\nauth:\n  allow-anonymous: false\n  plugins: [a, b\ntopic-check:\n  enable: true\n", "line 4: not valid YAML: this [ is never closed (add the matching ])"},
		{"listeners:\n  default: {type: tcp, bind: \"{:1883\"\n", "line 2: not valid YAML: this { is never closed (add the matching })"},
	} {
		path := writeFile(t, t.TempDir(), "mqttd.yaml", tc.yaml)
		_, err := Load(path)
		if err == nil || err.Error() != "config: "+path+": "+tc.want {
			t.Errorf("%q:\n got %v\nwant config: %s: %s", tc.yaml, err, path, tc.want)
		}
	}
	// Other YAML errors keep the parser's words.
	path := writeFile(t, t.TempDir(), "mqttd.yaml", "limits:\n\tmax-inflight: 3\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not valid YAML: yaml: line 2") {
		t.Errorf("a tab: %v", err)
	}
}
