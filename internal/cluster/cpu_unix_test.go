//go:build unix

package cluster

import "syscall"

// rusageCPU is the process's user and system CPU time so far, in ns.
func rusageCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
