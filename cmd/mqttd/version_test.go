//go:build unix

package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	t.Cleanup(func() { version, commit = "", "" })
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "1903ec4a1b2c3d4e5f60718293a4b5c6d7e8f901"},
		{Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name            string
		bi              *debug.BuildInfo
		ok              bool
		version, commit string // link-time overrides
		want            string
	}{
		{name: "go install @version", bi: vcs, ok: true, want: "(module v1.2.0, commit 1903ec4a1b2c, modified)"},
		{name: "-buildvcs=false", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ok: true, want: "(module (devel), commit unknown)"},
		{name: "no build info", ok: false, want: "(module (devel), commit unknown)"},
		{name: "empty module version", bi: &debug.BuildInfo{}, ok: true, want: "(module (devel), commit unknown)"},
		{name: "-ldflags", bi: vcs, ok: true, version: "v9.9.9", commit: "abc", want: "(module v9.9.9, commit abc)"},
	} {
		version, commit = tc.version, tc.commit
		got := readVersion(tc.bi, tc.ok).String()
		if !strings.HasPrefix(got, "mqttd ") || !strings.Contains(got, tc.want) || !strings.Contains(got, " go1.") {
			t.Errorf("%s: %q, want it to contain %q", tc.name, got, tc.want)
		}
	}
}

// The built binary answers both spellings, and -ldflags -X sets what it
// reports.
func TestBinaryVersion(t *testing.T) {
	bin := mqttdBinary(t)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.HasPrefix(string(out), "mqttd ") || !strings.Contains(string(out), "(module ") {
			t.Errorf("mqttd %v: %q, %v", args, out, err)
		}
	}
	stamped := filepath.Join(t.TempDir(), "mqttd")
	ld := "-X main.version=v7.7.7 -X main.commit=0123456789abcdef"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(stamped, "--version").Output()
	if want := "(module v7.7.7, commit 0123456789ab)"; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("stamped binary: %q, %v; want %q", out, err, want)
	}
}
