//go:build !unix

package mqtt

import "syscall"

// writeFD has no non-blocking write to make here: it writes nothing, as a
// full socket would, so the writer goroutine sends everything.
func writeFD(fd uintptr, b []byte) (int, error) { return 0, syscall.EAGAIN }
