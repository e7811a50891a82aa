//go:build !unix

package mqtt

import "net"

// peekSupported is false where a socket cannot be peeked at: readers never
// park there.
const peekSupported = false

func awaitReadable(net.Conn) {}
