package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	hooksNodeOnce sync.Once
	hooksNodeErr  string // why examples/hooks-node cannot run, with what to do
)

// needHooksNode makes examples/hooks-node runnable or fails the test saying
// what to run: node must be on PATH, and node_modules is installed with
// npm ci when it is missing (once per test binary). The end-to-end tests
// never skip: a run without them must not look green.
func needHooksNode(t *testing.T, root string) (node string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: the end-to-end tests run examples/hooks-node, which needs Node.js 20+ " +
			"(Debian: apt-get install nodejs, or https://nodejs.org); then run go test ./test/e2e again")
	}
	hooksNodeOnce.Do(func() {
		dir := filepath.Join(root, "examples", "hooks-node")
		if fi, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil && fi.IsDir() {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			hooksNodeErr = "examples/hooks-node/node_modules is missing and npm is not on PATH: install npm, then run npm ci in examples/hooks-node"
			return
		}
		t.Logf("examples/hooks-node/node_modules is missing: running npm ci there")
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			hooksNodeErr = "npm ci in examples/hooks-node failed (" + err.Error() + "); run it there by hand to see why:\n" + tail(string(out), 30)
		}
	})
	if hooksNodeErr != "" {
		t.Fatal(hooksNodeErr)
	}
	return node
}
