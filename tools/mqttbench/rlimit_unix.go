//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: each
// connection costs a descriptor here, and a soft limit of 1024 would turn a
// 5000-connection test into EMFILE errors. The Go runtime has done the same
// at start-up since Go 1.19; doing it explicitly keeps that assumption
// visible and lets us report the limit we actually got.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
