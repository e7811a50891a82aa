package packets

import (
	"unicode/utf8"
	"unsafe"
)

// maxString is the longest UTF-8 string or binary field: its length is a
// two-byte integer.
const maxString = 65535

// special marks the bytes scanString must look at: U+0000, the wildcards
// and the first byte of every multi-byte sequence. Topics are mostly plain
// ASCII, so skipping the rest with one table lookup per byte pays.
var special = func() (t [256]bool) {
	t[0], t['+'], t['#'] = true, true, true
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = true
	}
	return t
}()

// scanString reports whether s is an MQTT UTF-8 string and whether it holds
// a wildcard, in one pass because a PUBLISH topic needs both answers.
func scanString(s string) (ok, wildcard bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if !special[c] {
			i++
			continue
		}
		switch {
		case c == 0:
			// [MQTT-1.5.3-2] / [MQTT5-1.5.4-2]: U+0000 is malformed.
			return false, wildcard
		case c == '+' || c == '#':
			wildcard = true
			i++
			continue
		}
		// [MQTT-1.5.3-1] / [MQTT5-1.5.4-1]: ill-formed UTF-8,
		// including encoded surrogates U+D800..U+DFFF, is malformed. The
		// standard decoder returns RuneError of width 1 for both.
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false, wildcard
		}
		i += size
	}
	return true, wildcard
}

// ValidUTF8 reports whether s is well-formed UTF-8 without U+0000 or
// surrogate code points, as every MQTT string must be ([MQTT-1.5.3-1],
// [MQTT-1.5.3-2]). Non-characters such as U+FFFF are allowed: the spec says a
// receiver must not close the connection for them.
func ValidUTF8(s string) bool {
	ok, _ := scanString(s)
	return ok
}

// ValidTopicName reports whether s may be used as the topic of a PUBLISH or
// a will: a non-empty valid UTF-8 string of at most 65535 bytes with no
// wildcard characters ([MQTT-3.3.2-2], [MQTT-4.7.3-1]).
func ValidTopicName(s string) bool {
	if s == "" || len(s) > maxString {
		return false
	}
	ok, wild := scanString(s)
	return ok && !wild
}

// ValidTopicFilter reports whether s is a syntactically valid topic filter:
// a non-empty valid UTF-8 string where '#' appears only as the whole last
// level ([MQTT-4.7.1-2]) and '+' only as a whole level ([MQTT-4.7.1-3]).
// It does not interpret shared subscriptions ("$share/..."); the broker does.
func ValidTopicFilter(s string) bool {
	if s == "" || len(s) > maxString || !ValidUTF8(s) {
		return false
	}
	start := 0 // first byte of the current level
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/':
			start = i + 1
		case '+':
			if i != start || (i+1 < len(s) && s[i+1] != '/') {
				return false
			}
		case '#':
			if i != start || i != len(s)-1 {
				return false
			}
		}
	}
	return true
}

// reader walks a packet body. The first error sticks and later reads return
// zero values, so decoders read a whole structure and check r.err once. It
// lives on the caller's stack; nothing it returns is a copy.
type reader struct {
	b   []byte
	off int
	err error
}

// fail records err unless an earlier error is already recorded.
func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// take returns the next n bytes, or nil with a recorded error when fewer
// remain.
func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.err = malformed(what + " is truncated")
		return nil
	}
	b := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(what string) byte {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return 0
}

// varint reads a Variable Byte Integer of at most four bytes.
func (r *reader) varint(what string) int {
	v, mult := 0, 1
	for i := 0; i < 4; i++ {
		c := r.u8(what)
		if r.err != nil {
			return 0
		}
		v += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return v
		}
		mult <<= 7
	}
	r.fail(malformed(what + " is a variable byte integer longer than four bytes"))
	return 0
}

// binary reads two-byte-length-prefixed data. Empty data is returned as nil
// so that a decoded packet compares equal however its buffer was built.
func (r *reader) binary(what string) []byte {
	n := int(r.u16(what))
	b := r.take(n, what)
	if n == 0 {
		return nil
	}
	return b
}

// rawString reads a length-prefixed string without validating it.
func (r *reader) rawString(what string) string {
	b := r.binary(what)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// str reads a length-prefixed string and checks it is MQTT UTF-8.
func (r *reader) str(what string) string {
	s := r.rawString(what)
	if !ValidUTF8(s) {
		// [MQTT-1.5.3-1], [MQTT-1.5.3-2] / [MQTT5-1.5.4-1], [MQTT5-1.5.4-2]
		r.fail(malformed(what + " is not valid UTF-8 or contains U+0000"))
		return ""
	}
	return s
}

// rest returns the unread bytes (nil when none), consuming them.
func (r *reader) rest() []byte {
	if r.err != nil || r.off == len(r.b) {
		r.off = len(r.b)
		return nil
	}
	b := r.b[r.off:]
	r.off = len(r.b)
	return b
}

// left is the number of unread bytes.
func (r *reader) left() int { return len(r.b) - r.off }

// done returns the recorded error, or a malformed error if bytes are left
// over: a body must be consumed exactly.
func (r *reader) done(what string) error {
	if r.err == nil && r.off != len(r.b) {
		r.err = malformed(what + " has trailing bytes")
	}
	return r.err
}

func appendU16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends a length-prefixed string; the caller has checked
// that it is at most maxString bytes.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, byte(len(s)>>8), byte(len(s)))
	return append(dst, s...)
}

// appendBinary appends length-prefixed data; the caller has checked its length.
func appendBinary(dst []byte, b []byte) []byte {
	dst = append(dst, byte(len(b)>>8), byte(len(b)))
	return append(dst, b...)
}
