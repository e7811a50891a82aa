package mqtt

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

const (
	minReadBuf = 512      // an idle connection holds no more than this
	maxReadBuf = 64 << 10 // a busy one reads up to this per syscall
	waryChunk  = 4 << 10  // a wary reader's growth step beyond the bytes it holds
)

// packetReader frames packets out of a connection with as few read syscalls
// as the traffic allows: the buffer doubles while reads fill it and halves
// while they stay small, so a busy publisher reads 64 KiB at a time and an
// idle device holds 512 bytes.
//
// Before the client is authenticated (wary), the buffer grows only when the
// bytes that arrived fill it, to twice what it holds (at least waryChunk
// more): a packet's announced
// length costs nothing until its bytes are there, so a socket that announces
// a large CONNECT and sends nothing holds the 512-byte buffer.
type packetReader struct {
	conn       net.Conn
	buf        []byte
	start, end int
	max        int  // largest packet accepted
	wary       bool // grow with the bytes received, not the lengths announced
	short      int  // consecutive reads that used little of buf
	bytes      int64
	last       time.Time // when bytes last arrived
	// beforeRead runs before each blocking read (deadline, stats flush).
	beforeRead func() error
}

var errPacketTooLarge = errors.New("packet exceeds the maximum packet size")

// next returns the next complete packet. body aliases the buffer and is
// valid until the following call.
func (r *packetReader) next() (packets.FixedHeader, []byte, error) {
	for {
		if r.end > r.start {
			fh, n, err := packets.DecodeFixedHeader(r.buf[r.start:r.end])
			switch {
			case err == nil:
				total := n + fh.Remaining
				if total > r.max {
					return fh, nil, errPacketTooLarge
				}
				if r.end-r.start >= total {
					body := r.buf[r.start+n : r.start+total]
					r.start += total
					return fh, body, nil
				}
				if !r.wary {
					r.reserve(total)
				}
			case !errors.Is(err, packets.ErrIncomplete):
				return fh, nil, err
			}
		}
		if err := r.fill(); err != nil {
			return packets.FixedHeader{}, nil, err
		}
	}
}

// reserve makes room for a packet of total bytes starting at r.start.
func (r *packetReader) reserve(total int) {
	if len(r.buf)-r.start >= total {
		return
	}
	if len(r.buf) >= total {
		r.compact()
		return
	}
	if r.wary {
		r.grow(total) // fill asked for what it holds plus a chunk
		return
	}
	r.grow(max(total, 2*len(r.buf)))
}

// grow moves the unread bytes to the start of a new buffer of size bytes.
// The old buffer is left as it was, so what aliases it stays valid.
func (r *packetReader) grow(size int) {
	nb := make([]byte, size)
	r.end = copy(nb, r.buf[r.start:r.end])
	r.start = 0
	r.buf = nb
}

func (r *packetReader) compact() {
	r.end = copy(r.buf, r.buf[r.start:r.end])
	r.start = 0
}

// unread puts bytes read from the connection by someone else (the CONNECT
// watcher) back in front of what the reader will read next. It never moves
// bytes already in the buffer: the CONNECT being handled aliases them.
func (r *packetReader) unread(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(r.buf)-r.end < len(b) {
		r.grow(max(r.end-r.start+len(b), minReadBuf))
	}
	r.end += copy(r.buf[r.end:], b)
	r.bytes += int64(len(b))
}

// fill reads once from the connection.
func (r *packetReader) fill() error {
	if r.start == r.end {
		r.start, r.end = 0, 0
		if r.short > 64 && len(r.buf) > minReadBuf {
			r.buf = make([]byte, len(r.buf)/2)
			r.short = 0
		}
	} else if r.start > 0 && len(r.buf)-r.end < minReadBuf {
		r.compact()
	}
	if r.buf == nil {
		r.buf = readBufs.Get().(*[minReadBuf]byte)[:]
	}
	switch {
	case r.end < len(r.buf):
	case r.wary:
		// Grow with what arrived, doubling it (at least one chunk more), so
		// a large CONNECT is copied a logarithmic number of times while the
		// buffer stays within twice the bytes the client really sent.
		held := r.end - r.start
		r.reserve(max(min(held+max(waryChunk, held), r.max), held+1))
	default:
		r.reserve(len(r.buf) + 1)
	}
	if r.beforeRead != nil {
		if err := r.beforeRead(); err != nil {
			return err
		}
	}
	free := len(r.buf) - r.end
	n, err := r.conn.Read(r.buf[r.end:])
	if n > 0 {
		r.last = time.Now()
	}
	r.end += n
	r.bytes += int64(n)
	switch {
	case n == free && len(r.buf) < maxReadBuf && !r.wary:
		// The kernel had more: read more per syscall from now on.
		r.grow(2 * len(r.buf))
		r.short = 0
	case n < len(r.buf)/8:
		r.short++
	default:
		r.short = 0
	}
	if n > 0 {
		return nil // hand over what arrived; the error comes back on the next read
	}
	return err
}

// readBufs holds the smallest read buffers while their connections are
// parked.
var readBufs = sync.Pool{New: func() any { return new([minReadBuf]byte) }}

// empty says whether no unread bytes are buffered.
func (r *packetReader) empty() bool { return r.start == r.end }

// release lets go of the buffer of a reader with nothing unread; the
// smallest size goes back to readBufs. Nothing aliases the buffer between
// packets: handlers copy what they keep, as the next read overwrites it.
func (r *packetReader) release() {
	if r.start != r.end {
		return
	}
	if len(r.buf) == minReadBuf {
		readBufs.Put((*[minReadBuf]byte)(r.buf))
	}
	r.buf, r.start, r.end, r.short = nil, 0, 0, 0
}

// connectLevel is the protocol level of the CONNECT at the head of the
// buffer, or 0 when its first bytes have not arrived or are not a CONNECT's.
func (r *packetReader) connectLevel() packets.Version {
	b := r.buf[r.start:r.end]
	_, n, err := packets.DecodeFixedHeader(b)
	if err != nil || len(b) < n+7 || string(b[n:n+6]) != "\x00\x04MQTT" {
		return 0
	}
	return packets.Version(b[n+6])
}
