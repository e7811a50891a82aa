//go:build unix

package mqtt

import "syscall"

// benchCPU is the process's user and system CPU time so far, in ns.
func benchCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
