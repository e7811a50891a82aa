//go:build !unix

package e2e

import "os/exec"

// newProcGroup has no process groups to make here.
func newProcGroup(cmd *exec.Cmd) {}

// killProcGroup kills cmd itself: its children are not reached.
func killProcGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
