package mqtt

import "unsafe"

// A routed message's owned copy is a Message and its topic and payload
// bytes. msgBox puts both in one allocation: half the allocations of a
// QoS 1/2 message that has to be kept (queued, in a persistent session's
// window, retained), for the same bytes. The array sizes are the heap's
// size classes less the Message, so the box wastes no more than a separate
// buffer would.
type msgBox[A any] struct {
	m Message
	b A
}

// boxed allocates a Message with room for n bytes beside it, A being an
// array of at least n bytes. The bytes are returned with their capacity
// cut at n, so no append reaches past them.
func boxed[A any](n int) (*Message, []byte) {
	x := new(msgBox[A])
	b := unsafe.Slice((*byte)(unsafe.Pointer(&x.b)), unsafe.Sizeof(x.b))
	return &x.m, b[:n:n]
}

// maxBoxed is the most bytes a box holds; a larger message's bytes get an
// allocation of their own (the copy then costs more than the allocation).
const maxBoxed = 1952

// newMessage allocates a Message and n bytes for its topic and payload.
func newMessage(n int) (*Message, []byte) {
	switch {
	case n <= 16:
		return boxed[[16]byte](n)
	case n <= 32:
		return boxed[[32]byte](n)
	case n <= 48:
		return boxed[[48]byte](n)
	case n <= 64:
		return boxed[[64]byte](n)
	case n <= 80:
		return boxed[[80]byte](n)
	case n <= 96:
		return boxed[[96]byte](n)
	case n <= 112:
		return boxed[[112]byte](n)
	case n <= 128:
		return boxed[[128]byte](n)
	case n <= 160:
		return boxed[[160]byte](n)
	case n <= 192:
		return boxed[[192]byte](n)
	case n <= 224:
		return boxed[[224]byte](n)
	case n <= 256:
		return boxed[[256]byte](n)
	case n <= 320:
		return boxed[[320]byte](n)
	case n <= 416:
		return boxed[[416]byte](n)
	case n <= 544:
		return boxed[[544]byte](n)
	case n <= 672:
		return boxed[[672]byte](n)
	case n <= 928:
		return boxed[[928]byte](n)
	case n <= 1184:
		return boxed[[1184]byte](n)
	case n <= 1440:
		return boxed[[1440]byte](n)
	case n <= maxBoxed:
		return boxed[[maxBoxed]byte](n)
	}
	return new(Message), make([]byte, n)
}
