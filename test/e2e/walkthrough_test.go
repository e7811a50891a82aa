package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The README's fixed addresses, which the test replaces with ports the
// system chooses.
const (
	readmeHooksAddr = "127.0.0.1:3000"
	readmeMQTTAddr  = "127.0.0.1:1883"
)

// TestWalkthroughWithoutDocker runs the shell block of "Without Docker" in
// examples/hooks-node/README.md, line by line, as a newcomer would paste
// it: npm ci, hooks-node started with npm start, mqttd built with go build
// and started on the compose config, then the README's MQTT check. Only the
// fixed ports are replaced (by 0, then by what each process reports), and
// the binary goes to a temporary directory instead of the checkout.
func TestWalkthroughWithoutDocker(t *testing.T) {
	root := repoRoot(t)
	needHooksNode(t, root)
	lines := walkthrough(t, filepath.Join(root, "examples", "hooks-node", "README.md"))
	tmp := t.TempDir()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "MQTTD_") || slices.Contains([]string{"PORT", "HOOKS_SECRET", "USERS_FILE", "ACL_FILE"}, name)
	})
	// mqttd runs in the checkout, as the README says; its store goes to a
	// fresh directory, not the checkout's ./data.
	env = append(env, "MQTTD_STORAGE_DIR="+filepath.Join(tmp, "data"))
	dir := root
	addrs := map[string]string{} // README address -> the real one, once known
	var startedHooks, startedMqttd, checked bool
	for _, line := range lines {
		background := strings.HasSuffix(line, "&")
		fields := strings.Fields(strings.TrimSuffix(line, "&"))
		if fields[0] == "cd" {
			dir = filepath.Join(dir, fields[1])
			continue
		}
		export := fields[0] == "export"
		if export {
			fields = fields[1:]
		}
		var vars []string
		for len(fields) > 0 && strings.Contains(fields[0], "=") && !strings.HasPrefix(fields[0], "-") {
			vars = append(vars, rewriteVar(fields[0], addrs))
			fields = fields[1:]
		}
		if export {
			env = append(env, vars...)
			continue
		}
		args := make([]string, len(fields))
		for i, f := range fields {
			args[i] = rewriteArg(f, tmp, addrs)
		}
		cmdEnv := append(slices.Clone(env), vars...)
		switch {
		case background && slices.Equal(fields, []string{"npm", "start"}):
			p := startProc(t, "hooks-node", dir, cmdEnv, args[0], args[1:]...)
			m := p.waitLog(t, func(m map[string]any) bool { return m["msg"] == "listening" })
			addrs[readmeHooksAddr] = fmt.Sprintf("127.0.0.1:%v", m["port"])
			startedHooks = true
		case background && fields[0] == "./mqttd":
			p := startProc(t, "mqttd", dir, cmdEnv, args[0], args[1:]...)
			lst := p.waitLog(t, func(m map[string]any) bool { return m["msg"] == "listener ready" })
			addrs[readmeMQTTAddr] = fmt.Sprint(lst["addr"])
			adm := p.waitLog(t, func(m map[string]any) bool { return m["msg"] == "admin listening" })
			eventually(t, startWithin, "mqttd /readyz answers 200", func() (bool, string) {
				if err := p.exited(); err != nil {
					t.Fatalf("mqttd exited while starting: %v", err)
				}
				code, body, err := httpGet(fmt.Sprintf("http://%v/readyz", adm["addr"]))
				return code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
			})
			startedMqttd = true
		case background:
			t.Fatalf("README line %q: the test knows how to wait for npm start and ./mqttd only", line)
		default:
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir, cmd.Env = dir, cmdEnv
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("README line %q (run as %q in %s): %v\n%s", line, args, dir, err, tail(string(out), 40))
			}
			checked = checked || strings.Contains(line, "compose-login")
			t.Logf("%s: ok\n%s", line, tail(string(out), 5))
		}
	}
	if !startedHooks || !startedMqttd || !checked {
		t.Fatalf("the README's walkthrough no longer starts hooks-node (%v) and mqttd (%v) and checks them (%v)", startedHooks, startedMqttd, checked)
	}
	// The README's check passed; the same, once more, with the e2e clients.
	addr := addrs[readmeMQTTAddr]
	mustConnectV3(t, addr, "walkthrough-alice", alice, alicePass)
	if _, code := connectV3(t, addr, "walkthrough-wrong", alice, "not-wonderland"); code != v3BadCreds {
		t.Errorf("wrong password: return code 0x%02x, want 0x%02x", code, v3BadCreds)
	}
}

// walkthrough is the first shell block after "## Without Docker", one
// command per line, comments and blank lines dropped.
func walkthrough(t *testing.T, readme string) []string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := bytes.Cut(b, []byte("\n## Without Docker"))
	if !ok {
		t.Fatalf("%s has no \"## Without Docker\" section", readme)
	}
	_, block, ok := bytes.Cut(section, []byte("```sh\n"))
	block, _, ok2 := bytes.Cut(block, []byte("```"))
	if !ok || !ok2 {
		t.Fatalf("%s: \"Without Docker\" has no ```sh block", readme)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(block))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), " #")
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if strings.ContainsAny(line, "'\"$;|") {
				t.Fatalf("README line %q: the test runs plain commands and VAR=value words only", line)
			}
			lines = append(lines, line)
		}
	}
	return lines
}

// rewriteVar gives the system the choice of ports: PORT and the binds
// become 0, and an address already replaced is replaced here too.
func rewriteVar(kv string, addrs map[string]string) string {
	name, v, _ := strings.Cut(kv, "=")
	switch {
	case name == "PORT":
		v = "0"
	case strings.HasSuffix(name, "_BIND"):
		v = "127.0.0.1:0"
	default:
		v = replaceAddrs(v, addrs)
	}
	return name + "=" + v
}

// rewriteArg puts the binary built by "go build -o mqttd" in tmp, and
// replaces the README's addresses with the real ones.
func rewriteArg(arg, tmp string, addrs map[string]string) string {
	if arg == "mqttd" || arg == "./mqttd" {
		return filepath.Join(tmp, "mqttd")
	}
	return replaceAddrs(arg, addrs)
}

func replaceAddrs(s string, addrs map[string]string) string {
	for from, to := range addrs {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}
