package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record's value, version 1:
//
//	version(1) crc32c(4, of everything after it) uvarint(len id) id json
//
// The checksum is the spool's own: Pebble checks its blocks, but a record
// that decodes wrongly would be posted to the plugin as it is, so the
// decoder refuses anything it cannot vouch for.
const recordV1 = 1

// ErrBadRecord wraps every decoding failure.
var ErrBadRecord = errors.New("spool: bad record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the value for one event to dst.
func appendRecord(dst []byte, id string, json []byte) []byte {
	dst = append(dst, recordV1, 0, 0, 0, 0)
	at := len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	dst = append(dst, json...)
	binary.BigEndian.PutUint32(dst[at-4:at], crc32.Checksum(dst[at:], castagnoli))
	return dst
}

// decodeRecord splits a value into the event's id and JSON object. The
// returned slices alias v.
func decodeRecord(v []byte) (id, json []byte, err error) {
	if len(v) < 5 {
		return nil, nil, fmt.Errorf("%w: %d bytes, shorter than its header", ErrBadRecord, len(v))
	}
	if v[0] != recordV1 {
		return nil, nil, fmt.Errorf("%w: unknown version %d (written by a newer mqttd?)", ErrBadRecord, v[0])
	}
	body := v[5:]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(v[1:5]); got != want {
		return nil, nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrBadRecord, got, want)
	}
	n, w := binary.Uvarint(body)
	if w <= 0 || n > uint64(len(body)-w) {
		return nil, nil, fmt.Errorf("%w: id length does not fit", ErrBadRecord)
	}
	id, json = body[w:w+int(n)], body[w+int(n):]
	if len(json) < 2 || json[0] != '{' || json[len(json)-1] != '}' {
		return nil, nil, fmt.Errorf("%w: event is not a JSON object", ErrBadRecord)
	}
	return id, json, nil
}

// Keys: 0x00 holds the format version; 0x01 the next sequence number
// (8, big-endian), so numbers are not handed out twice after everything was
// released; 'e' seq(8, big-endian) one event.
var (
	formatKey = []byte{0}
	tailKey   = []byte{1}
)

const (
	formatV1  = 1
	eventByte = 'e'
	keyLen    = 9
)

func eventKey(seq uint64) []byte {
	k := make([]byte, keyLen)
	k[0] = eventByte
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != keyLen || k[0] != eventByte {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}
