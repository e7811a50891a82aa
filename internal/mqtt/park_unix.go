//go:build unix

package mqtt

import (
	"net"
	"syscall"
)

const peekSupported = true

// awaitReadable returns once conn has bytes to read, has ended, or its read
// deadline has passed. It peeks rather than reads, so that it needs no
// buffer, and it runs on a small stack: the whole point is that a parked
// connection's goroutine never grows one.
func awaitReadable(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	// A false answer makes the runtime wait for readiness and ask again;
	// the peek comes first because readiness seen before the wait began is
	// not remembered.
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return err != syscall.EAGAIN
	})
}
