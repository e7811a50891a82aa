package pebblestore

import "encoding/binary"

const (
	pFormat   = 0x00
	pSession  = 's'
	pRetained = 'r'
	pMessage  = 'm'
	pLast     = 'n'
	pQueue    = 'q'
	pInflight = 'i'
	pQoS2     = 'p'
)

var formatKey = []byte{pFormat}

func flatKey(prefix byte, s string) []byte {
	k := make([]byte, 0, 1+len(s))
	return append(append(k, prefix), s...)
}

func idKey(prefix byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, id)
}

// clientPrefix is prefix, len(id) as 2 bytes, id: the start of every
// composite key of one client.
func clientPrefix(prefix byte, id string, extra int) []byte {
	return appendClientPrefix(make([]byte, 0, 3+len(id)+extra), prefix, id)
}

func queueKey(id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(clientPrefix(pQueue, id, 8), seq)
}

// The append forms build a key into a reused buffer.

func appendClientPrefix(k []byte, prefix byte, id string) []byte {
	k = append(k, prefix)
	k = binary.BigEndian.AppendUint16(k, uint16(len(id)))
	return append(k, id...)
}

func appendQueueKey(k []byte, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendClientPrefix(k, pQueue, id), seq)
}

func appendPidKey(k []byte, prefix byte, id string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(appendClientPrefix(k, prefix, id), pid)
}

func appendIDKey(k []byte, prefix byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(k, prefix), id)
}

// upperBound is the smallest key greater than every key starting with p.
func upperBound(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] != 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil // p is all 0xff: no bound
}

// splitClientKey splits a composite key (clientPrefix, then a big-endian
// number of n bytes) into its client id and number; ok is false when its
// length prefix does not fit.
func splitClientKey(k []byte, n int) (id []byte, num uint64, ok bool) {
	if len(k) < 3 || len(k) != 3+int(k[1])<<8+int(k[2])+n {
		return nil, 0, false
	}
	num, _ = tailUint(k, n)
	return k[3 : len(k)-n], num, true
}

// tailUint reads the big-endian number that ends key k (n = 2 or 8 bytes).
func tailUint(k []byte, n int) (uint64, bool) {
	if len(k) < n {
		return 0, false
	}
	t := k[len(k)-n:]
	if n == 2 {
		return uint64(binary.BigEndian.Uint16(t)), true
	}
	return binary.BigEndian.Uint64(t), true
}
