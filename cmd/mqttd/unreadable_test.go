//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mqttd/mqttd/internal/testpki"
)

// A file mqttd may not read (a checkout made under umask 077, mounted into
// a container whose user does not own it) stops the start with a message
// naming the file, the user mqttd runs as and the fix. As root the test runs
// the binary as uid 65532, the user of mqttd's container image.
func TestUnreadableFilesNamed(t *testing.T) {
	bin := mqttdBinary(t)
	uid, gid := os.Getuid(), os.Getgid()
	var cred *syscall.Credential
	if uid == 0 {
		uid, gid = 65532, 65532
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir := t.TempDir()
	if cred != nil { // the binary and the test's files must be reachable by that user
		reachable(t, filepath.Dir(bin))
		reachable(t, dir)
	}
	crt, key := testpki.SelfSigned(t, dir, "srv")
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("alice:$2y$10$abcdefghijklmnopqrstuu5Jk1vV0RzK9fYQwq6JwFQ2h0l0q8pCq\n"), 0o644)
	for _, tc := range []struct {
		name, unreadable, config string
	}{
		{name: "config file", config: "listeners:\n  default: {bind: \"127.0.0.1:0\"}\n"},
		{name: "password file", unreadable: passwd,
			config: fmt.Sprintf("plugins:\n  pw: {type: password-file, file: %s}\nauth:\n  plugins: [pw]\n", passwd)},
		{name: "TLS key", unreadable: key,
			config: fmt.Sprintf("listeners:\n  tls: {bind: \"127.0.0.1:0\", tls: {cert: %s, key: %s}}\n", crt, key)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(tc.config+"admin:\n  bind: \"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			locked := tc.unreadable
			if locked == "" {
				locked = cfg
			}
			readable(t, locked, false)
			defer readable(t, locked, true)
			cmd := exec.Command(bin, "--config", cfg)
			cmd.Env = cleanEnv()
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			out, err := cmd.CombinedOutput()
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			want := fmt.Sprintf("cannot read %s: permission denied for uid %d (gid %d), the user mqttd runs as; make the file and its directories readable by that user (chmod a+r %s, or chown it)", locked, uid, gid, locked)
			if code != exitUsage || !strings.Contains(string(out), want) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain:\n%s", code, exitUsage, out, want)
			}
		})
	}
}

// readable makes path readable by its owner only (as a checkout under
// umask 077 would be) or by everyone.
func readable(t *testing.T, path string, yes bool) {
	t.Helper()
	mode := os.FileMode(0o600)
	if yes {
		mode = 0o644
	}
	if os.Getuid() != 0 && !yes {
		mode = 0 // not root: even the owner, the test's user, must not read it
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// reachable opens dir and its parents to everyone, as /tmp's temporary
// directories are made 0700.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
