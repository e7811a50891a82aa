//go:build unix

package filelock

import (
	"os"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive lock on f without waiting: flock, which
// belongs to the open file and goes with it when the process dies.
func Lock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// Unlock drops the lock Lock took.
func Unlock(f *os.File) { unix.Flock(int(f.Fd()), unix.LOCK_UN) }
