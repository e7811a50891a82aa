//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/passwdfile"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// runPasswd runs `mqttd passwd args...` through run, with stdin the given
// text (a regular file, so not a terminal).
func runPasswd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(in, []byte(stdin), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	setPasswdInput(t, f)
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"passwd"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func setPasswdInput(t *testing.T, f *os.File) {
	old := passwdInput
	passwdInput = f
	t.Cleanup(func() { passwdInput = old })
}

// checkLogin loads file with the password-file plugin and reports how it
// answers user with pw.
func checkLogin(t *testing.T, file, user, pw string) hooks.Result {
	t.Helper()
	p, err := passwdfile.New(passwdfile.Options{File: file})
	if err != nil {
		t.Fatalf("the plugin cannot load what mqttd passwd wrote: %v", err)
	}
	d, err := p.Authenticate(context.Background(), &hooks.AuthRequest{
		Client: &mqtt.ClientInfo{ClientID: "c", Username: user}, Password: []byte(pw)})
	if err != nil {
		t.Fatal(err)
	}
	return d.Result
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Adding, changing and deleting users through run, the password piped on
// standard input; the plugin accepts what the command wrote.
func TestPasswdAddUpdateDelete(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	code, out, errs := runPasswd(t, "s3cret\n", file, "alice")
	if code != 0 || out != fmt.Sprintf("added user \"alice\" to %s\n", file) {
		t.Fatalf("add alice: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a new file must be created with mode 0600: %v %v", fi.Mode(), err)
	}
	if !strings.HasPrefix(readFile(t, file), "alice:$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("new entries are argon2id with OWASP's parameters:\n%s", readFile(t, file))
	}
	if got := checkLogin(t, file, "alice", "s3cret"); got != hooks.Allow {
		t.Errorf("alice with her password: %v", got)
	}

	// Comments and other lines survive; the mode the operator chose too.
	os.WriteFile(file, []byte("# staff\r\n"+readFile(t, file)+"\n# end\n"), 0o600)
	os.Chmod(file, 0o640)
	// Flags may follow the arguments; a CRLF line on stdin loses its CR.
	if code, out, errs := runPasswd(t, "b0b-pw\r\n", file, "bob", "--bcrypt"); code != 0 || !strings.HasPrefix(out, "added user \"bob\"") {
		t.Fatalf("add bob: exit %d, %q %q", code, out, errs)
	}
	if code, out, errs := runPasswd(t, "n3w", file, "alice"); code != 0 || out != fmt.Sprintf("updated user \"alice\" in %s\n", file) {
		t.Fatalf("update alice (no newline on stdin): exit %d, %q %q", code, out, errs)
	}
	content := readFile(t, file)
	lines := strings.Split(content, "\n")
	if len(lines) != 6 || lines[0] != "# staff\r" || !strings.HasPrefix(lines[1], "alice:$argon2id$") || lines[2] != "" ||
		lines[3] != "# end" || !strings.HasPrefix(lines[4], "bob:$2a$10$") || lines[5] != "" {
		t.Errorf("file after updates:\n%s", content)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's own 0640 kept", fi.Mode().Perm())
	}
	for _, c := range []struct {
		user, pw string
		want     hooks.Result
	}{{"alice", "n3w", hooks.Allow}, {"alice", "s3cret", hooks.Deny}, {"bob", "b0b-pw", hooks.Allow}} {
		if got := checkLogin(t, file, c.user, c.pw); got != c.want {
			t.Errorf("%s with %q: %v, want %v", c.user, c.pw, got, c.want)
		}
	}

	if code, out, errs := runPasswd(t, "", "-D", file, "alice"); code != 0 || out != fmt.Sprintf("deleted user \"alice\" from %s\n", file) {
		t.Fatalf("delete alice: exit %d, %q %q", code, out, errs)
	}
	if code, _, _ := runPasswd(t, "", file, "--delete", "bob"); code != 0 {
		t.Fatalf("delete bob with --delete after FILE: exit %d", code)
	}
	if got := readFile(t, file); got != "# staff\r\n\n# end\n" {
		t.Errorf("after deleting both users only the comments should be left: %q", got)
	}
	if got := checkLogin(t, file, "alice", "n3w"); got != hooks.Deny {
		t.Errorf("a deleted user is unknown to the plugin, so refused; got %v", got)
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// A password file behind a symbolic link is edited in place; the link
// stays a link.
func TestPasswdFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real"), filepath.Join(dir, "link")
	os.WriteFile(real, nil, 0o600)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runPasswd(t, "pw\n", link, "carol"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced by a file")
	}
	if got := checkLogin(t, real, "carol", "pw"); got != hooks.Allow {
		t.Errorf("carol in the link's target: %v", got)
	}
}

// Every refusal says what is wrong and changes nothing.
func TestPasswdErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if code, _, errs := runPasswd(t, "pw\n", good, "alice"); code != 0 {
		t.Fatal(errs)
	}
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, []byte("# x\nbob:plaintext\n"), 0o600)
	missing := filepath.Join(dir, "missing")
	before := readFile(t, good)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"no arguments", "", nil, exitUsage, "mqttd passwd: want FILE and USER, got 0 argument(s)\nusage:"},
		{"three arguments", "", []string{good, "a", "b"}, exitUsage, "mqttd passwd: want FILE and USER, got 3 argument(s)\n"},
		{"unknown flag", "", []string{"--sha", good, "a"}, exitUsage, "mqttd passwd: flag provided but not defined: -sha\n"},
		{"colon in name", "pw\n", []string{good, "a:b"}, exitUsage,
			"mqttd passwd: the user name \"a:b\" contains ':', which separates the name from the hash; choose another name\n"},
		{"control character in name", "pw\n", []string{good, "a\tb"}, exitUsage,
			"mqttd passwd: the user name \"a\\tb\" contains a control character; choose another name\n"},
		{"delete with bcrypt", "", []string{"-D", "--bcrypt", good, "alice"}, exitUsage,
			"mqttd passwd: --bcrypt chooses the hash of a new password; it does not go with --delete\n"},
		{"nothing on stdin", "", []string{good, "bob"}, exitFailure,
			"mqttd passwd: no password on standard input (pipe one line, or run on a terminal); nothing changed\n"},
		{"empty password", "\n", []string{good, "bob"}, exitFailure, "mqttd passwd: the password is empty; nothing changed\n"},
		{"too long for MQTT", strings.Repeat("x", 65536) + "\n", []string{good, "bob"}, exitFailure,
			"mqttd passwd: the password is longer than MQTT's 65535 bytes; nothing changed\n"},
		{"too long for bcrypt", strings.Repeat("x", 73) + "\n", []string{"--bcrypt", good, "bob"}, exitFailure,
			"mqttd passwd: the password is 73 bytes long; bcrypt reads only 72 (use argon2id, the default, for longer ones); nothing changed\n"},
		{"delete unknown user", "", []string{"-D", good, "zed"}, exitFailure,
			"mqttd passwd: " + good + " has no user \"zed\"; nothing changed\n"},
		{"delete from a missing file", "", []string{"-D", missing, "zed"}, exitFailure,
			"mqttd passwd: " + missing + " does not exist; nothing to delete\n"},
		{"another line is broken", "pw\n", []string{broken, "alice"}, exitFailure,
			"mqttd passwd: " + broken + ":2: user \"bob\": the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$) (set a new password with: mqttd passwd " + broken + " bob); fix that line first (nothing changed)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runPasswd(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.HasPrefix(errs, tc.stderr) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr\n%s\nwant exit %d and stderr starting\n%s", code, out, errs, tc.code, tc.stderr)
			}
		})
	}
	if got := readFile(t, good); got != before {
		t.Errorf("a refused command changed the file:\n%s", got)
	}
	if got := readFile(t, broken); got != "# x\nbob:plaintext\n" {
		t.Errorf("the broken file was changed: %q", got)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused command created a file")
	}
	// The broken line can be mended by setting that user's password.
	if code, _, errs := runPasswd(t, "fixed\n", broken, "bob"); code != 0 || checkLogin(t, broken, "bob", "fixed") != hooks.Allow {
		t.Errorf("resetting the broken user: exit %d %s", code, errs)
	}
}

func TestPasswdHelp(t *testing.T) {
	code, out, _ := runPasswd(t, "", "--help")
	if code != 0 || !strings.Contains(out, "mqttd passwd -D FILE USER") {
		t.Errorf("exit %d, help %q", code, out)
	}
	var top bytes.Buffer
	run(context.Background(), []string{"help"}, &top, &bytes.Buffer{})
	if !strings.Contains(top.String(), "mqttd passwd [-D] FILE USER") {
		t.Errorf("mqttd help does not mention passwd:\n%s", top.String())
	}
}

// openPTY returns both ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var n int
	rc, err := master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil { // unlock the slave
				n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
			}
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("setting up the pseudo-terminal: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// promptLog is passwd's stderr: it passes each write to the test.
type promptLog chan string

func (p promptLog) Write(b []byte) (int, error) { p <- string(b); return len(b), nil }

// typeAt waits for prompt on stderr and for the terminal to stop echoing
// (passwd turns echo off just after prompting), then types line.
func typeAt(t *testing.T, prompts promptLog, prompt string, master, tty *os.File, line string) {
	t.Helper()
	for got := ""; got != prompt; {
		select {
		case got = <-prompts:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q prompt", prompt)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("echo was never turned off")
		}
	}
	master.WriteString(line)
}

// On a terminal the password is asked twice and never echoed; two
// different answers change nothing.
func TestPasswdTerminal(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	for _, tc := range []struct {
		name, second string
		code         int
	}{{"mismatch", "typo-pw\n", exitFailure}, {"match", "tty-pw\n", exitOK}} {
		master, tty := openPTY(t)
		setPasswdInput(t, tty)
		prompts := make(promptLog, 16)
		var out bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- run(context.Background(), []string{"passwd", file, "dave"}, &out, prompts) }()
		typeAt(t, prompts, "Password: ", master, tty, "tty-pw\n")
		typeAt(t, prompts, "Reenter password: ", master, tty, tc.second)
		if code := <-done; code != tc.code {
			t.Fatalf("%s: exit %d, want %d", tc.name, code, tc.code)
		}
		close(prompts)
		var stderr strings.Builder
		for p := range prompts {
			stderr.WriteString(p)
		}
		if tc.code != exitOK {
			if !strings.HasSuffix(stderr.String(), "mqttd passwd: the passwords do not match; nothing changed\n") {
				t.Errorf("%s: stderr %q", tc.name, stderr.String())
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("%s: the file was created", tc.name)
			}
		}

		// Echo is back on: what is typed now comes back, after whatever
		// the terminal showed before, which must not be the password.
		master.WriteString("MARK\n")
		var shown []byte
		buf := make([]byte, 256)
		master.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !bytes.Contains(shown, []byte("MARK")) {
			n, err := master.Read(buf)
			if err != nil {
				t.Fatalf("%s: reading the terminal: %v (so far %q)", tc.name, err, shown)
			}
			shown = append(shown, buf[:n]...)
		}
		if bytes.Contains(shown, []byte("pw")) {
			t.Errorf("%s: the terminal echoed the password: %q", tc.name, shown)
		}
	}
	if got := checkLogin(t, file, "dave", "tty-pw"); got != hooks.Allow {
		t.Errorf("dave with the password typed twice: %v", got)
	}
}
