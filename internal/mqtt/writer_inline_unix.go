//go:build unix

package mqtt

import "syscall"

// writeFD is one write(2) on a socket the runtime keeps non-blocking: it
// takes what the socket has room for, or fails with EAGAIN.
func writeFD(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
