//go:build unix

package e2e

import (
	"os/exec"
	"syscall"
)

// newProcGroup starts cmd in a process group of its own, so that
// killProcGroup ends its children too.
func newProcGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killProcGroup sends SIGKILL to cmd's process group.
func killProcGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
