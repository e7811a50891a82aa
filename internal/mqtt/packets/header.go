package packets

// MaxVarInt is the largest value a Variable Byte Integer can hold (four
// bytes of seven bits): the ceiling for a packet's remaining length, a
// property block's length and a subscription identifier.
const MaxVarInt = 268435455

// FixedHeader is the first two to five bytes of every packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // length of the variable header plus payload
}

// requiredFlags holds, per packet type, the flag nibble the spec fixes; a
// PUBLISH has no fixed value because its flags carry DUP, QoS and RETAIN.
var requiredFlags = [16]byte{
	PUBREL:      0x2,
	SUBSCRIBE:   0x2,
	UNSUBSCRIBE: 0x2,
}

// DecodeFixedHeader parses the fixed header at the start of b; n is its
// length (2..5). Too few bytes give ErrIncomplete, so a caller can read more
// and retry. It checks the reserved flag bits of each type; it cannot check
// that AUTH is only used with MQTT 5, because the version is not known here.
// A remaining length in more bytes than needed is accepted: the minimum
// rule ([MQTT5-1.5.5-1]) binds the sender, and the value is unambiguous.
func DecodeFixedHeader(b []byte) (fh FixedHeader, n int, err error) {
	if len(b) < 2 {
		return fh, 0, ErrIncomplete
	}
	fh.Type = Type(b[0] >> 4)
	fh.Flags = b[0] & 0x0f
	if err := checkFlags(fh.Type, fh.Flags); err != nil {
		return fh, 0, err
	}
	mult := 1
	for i := 1; ; i++ {
		if i > 4 {
			// 5.0 §1.5.5 / 3.1.1 §2.2.3: at most four bytes.
			return fh, 0, malformed("remaining length longer than four bytes")
		}
		if i >= len(b) {
			return fh, 0, ErrIncomplete
		}
		c := b[i]
		fh.Remaining += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return fh, i + 1, nil
		}
		mult <<= 7
	}
}

// checkFlags validates the flag nibble of a packet type.
func checkFlags(t Type, flags byte) error {
	switch {
	case t == 0:
		// Type 0 is reserved: "Forbidden" in both versions.
		return malformed("packet type 0 is reserved")
	case t == PUBLISH:
		return nil // DUP, QoS and RETAIN are checked by Publish.Decode
	case flags != requiredFlags[t]:
		// [MQTT-2.2.2-2] / [MQTT5-2.1.3-1]: invalid flags are malformed.
		return malformed(t.String() + " has invalid fixed header flags")
	}
	return nil
}

// AppendFixedHeader appends the encoded fixed header fh to dst.
// fh.Remaining must lie in [0, MaxVarInt].
func AppendFixedHeader(dst []byte, fh FixedHeader) []byte {
	dst = append(dst, byte(fh.Type)<<4|fh.Flags&0x0f)
	return AppendVarInt(dst, fh.Remaining)
}

// AppendVarInt appends v as a Variable Byte Integer using the fewest bytes
// ([MQTT5-1.5.5-1]). v must lie in [0, MaxVarInt]; callers check the bound
// because what to do about an oversize value depends on where it occurs.
func AppendVarInt(dst []byte, v int) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// VarIntLen returns the number of bytes AppendVarInt uses for v.
func VarIntLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}
