package webhook

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Events are written by hand rather than with encoding/json: under load the
// encoder runs once per event on the same cores as the broker, and
// encoding/json's reflection, intermediate structs and its own output
// buffer cost about four times as much as appending straight into the
// batch. The output is byte for byte what encoding/json makes of the wire
// types (same field order, same escaping); encode_test.go keeps that
// encoder as the reference and holds this one to it, fuzzing included.

// appendEvent appends e as one JSON object of the wire contract. broker
// stands in for an event without one, and config for a broker_pre_start
// event without one. On error nothing is appended.
//
// It stays long on purpose: the envelope's fields in the contract's order,
// then one case per kind of event for its own fields, so the function reads
// against the spec top to bottom; split up, the field order (which the
// reference encoder test holds it to) would be harder to see.
func appendEvent(dst []byte, e *hooks.Event, broker string, config map[string]any) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return dst, err
	}
	// The config is free-form, so encoding/json does it, and first: it is
	// the one part that can fail once the checks have passed, and
	// failing before anything is written leaves dst as it was.
	var cfg []byte
	if e.Type == mqtt.EventBrokerPreStart {
		c := e.Config
		if c == nil {
			c = config
		}
		if c == nil {
			c = map[string]any{}
		}
		var err error
		if cfg, err = json.Marshal(c); err != nil {
			return dst, fmt.Errorf("%s event: %w", e.Type, err)
		}
	}
	orig := dst
	if e.Broker != "" {
		broker = e.Broker
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, `,"type":`...)
	dst = appendType(dst, e.Type)
	dst = append(dst, `,"time":"`...)
	dst = appendTime(dst, e.Time)
	dst = append(dst, `","broker":`...)
	dst = appendString(dst, broker)
	if c := e.Client; c != nil {
		dst = append(dst, `,"client_id":`...)
		dst = appendString(dst, c.ClientID)
		if a := c.Attributes(); len(a) > 0 {
			dst = append(dst, `,"attributes":`...)
			dst = appendAttributes(dst, a)
		}
	}
	switch e.Type {
	case mqtt.EventClientConnected, mqtt.EventClientDisconnected, mqtt.EventClientSubscribed, mqtt.EventClientUnsubscribed:
		dst = append(dst, `,"session":`...)
		dst = appendSession(dst, e.Client)
		switch e.Type {
		case mqtt.EventClientDisconnected:
			dst = append(dst, `,"reason":`...)
			dst = appendString(dst, e.Reason)
		case mqtt.EventClientSubscribed:
			dst = append(dst, `,"topic":`...)
			dst = appendString(dst, e.Topic)
			dst = append(dst, `,"qos":`...)
			dst = strconv.AppendUint(dst, uint64(e.QoS), 10)
		case mqtt.EventClientUnsubscribed:
			dst = append(dst, `,"topic":`...)
			dst = appendString(dst, e.Topic)
		}
	case mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage:
		if e.TargetID != "" {
			dst = append(dst, `,"target_client_id":`...)
			dst = appendString(dst, e.TargetID)
		}
		m := e.Message
		dst = append(dst, `,"message":`...)
		dst = appendMessageFields(dst, m.Payload, m.Properties)
		dst = append(dst, `,"qos":`...)
		dst = strconv.AppendUint(dst, uint64(m.QoS), 10)
		dst = append(dst, `,"retain":`...)
		dst = strconv.AppendBool(dst, m.Retain)
		dst = append(dst, `,"topic":`...)
		dst = appendString(dst, m.Topic)
		dst = append(dst, '}')
	case mqtt.EventPacketReceived, mqtt.EventPacketSent:
		dst = append(dst, `,"packet":`...)
		var err error
		if dst, err = appendPacket(dst, e.Packet); err != nil {
			return orig, err // checkEvent vetted the packet; kept for safety
		}
	case mqtt.EventBrokerPreStart:
		dst = append(dst, `,"config":`...)
		dst = append(dst, cfg...)
	}
	return append(dst, '}'), nil
}

// typeNames holds each event type's name as a JSON string.
var typeNames = func() (t [64]string) {
	for i := range t {
		t[i] = string(appendString(nil, mqtt.EventType(i).String()))
	}
	return t
}()

func appendType(dst []byte, t mqtt.EventType) []byte {
	if int(t) < len(typeNames) {
		return append(dst, typeNames[t]...)
	}
	return appendString(dst, t.String())
}

// second is the text of one second of UTC time as RFC 3339 writes it
// before the fraction. Every event of that second shares it, so the date
// and clock are formatted about once a second instead of once per event.
type second struct {
	unix int64
	text []byte
}

var lastSecond atomic.Pointer[second]

// appendTime appends t in UTC as time.RFC3339Nano formats it, without the
// quotes: the layout only ever writes digits, signs, 'T', ':', '.' and
// 'Z', none of which needs escaping.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	unix := t.Unix()
	s := lastSecond.Load()
	if s == nil || s.unix != unix {
		s = &second{unix: unix, text: t.AppendFormat(nil, "2006-01-02T15:04:05")}
		lastSecond.Store(s)
	}
	dst = append(dst, s.text...)
	if ns := uint32(t.Nanosecond()); ns != 0 {
		// Nine digits, two per step, then the trailing zeros cut.
		var frac [10]byte
		frac[0] = '.'
		frac[9] = byte('0' + ns%10)
		ns /= 10
		for i := 7; i > 0; i -= 2 {
			d := ns % 100 * 2
			frac[i], frac[i+1] = twoDigits[d], twoDigits[d+1]
			ns /= 100
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z')
}

const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// checkEvent refuses what the spec cannot express, in the order the
// encoding/json encoder used to, so that the error an event gets is the
// same.
func checkEvent(e *hooks.Event) error {
	switch e.Type {
	case mqtt.EventClientConnected, mqtt.EventClientDisconnected, mqtt.EventClientSubscribed, mqtt.EventClientUnsubscribed:
		if e.Client == nil {
			return fmt.Errorf("%s event without a client", e.Type)
		}
	case mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage:
		if e.Message == nil {
			return fmt.Errorf("%s event without a message", e.Type)
		}
	case mqtt.EventPacketReceived, mqtt.EventPacketSent:
		if !knownPacket(e.Packet) {
			return fmt.Errorf("packet event without a known packet (%T)", e.Packet)
		}
	}
	if e.Client == nil && needsClient(e.Type) {
		return fmt.Errorf("%s event without a client", e.Type)
	}
	return nil
}

// appendSession appends the wire Session object for c.
func appendSession(dst []byte, c *mqtt.ClientInfo) []byte {
	dst = append(dst, `{"clean_start":`...)
	dst = strconv.AppendBool(dst, c.CleanStart)
	dst = append(dst, `,"client_id":`...)
	dst = appendString(dst, c.ClientID)
	dst = append(dst, `,"keep_alive":`...)
	dst = strconv.AppendUint(dst, uint64(c.KeepAlive), 10)
	dst = append(dst, `,"listener":`...)
	dst = appendString(dst, c.Listener)
	dst = append(dst, `,"protocol_version":`...)
	dst = strconv.AppendUint(dst, uint64(c.ProtocolVersion), 10)
	dst = append(dst, `,"remote_addr":`...)
	dst = appendString(dst, c.RemoteAddr)
	dst = append(dst, `,"transport":`...)
	dst = appendString(dst, c.Transport)
	dst = append(dst, `,"username":`...)
	dst = appendString(dst, c.Username)
	return append(dst, '}')
}

// appendMessageFields opens a message (a Message or a PUBLISH) with the
// fields that sort before "qos": the payload and any properties. The
// caller writes the rest and closes it.
func appendMessageFields(dst, payload []byte, props *packets.Properties) []byte {
	dst = append(dst, `{"payload":`...)
	dst = appendBase64(dst, payload)
	return appendProperties(dst, props)
}

// appendProperties appends `,"properties":{...}` with the MQTT 5
// properties that belong to the message (the ones a subscriber receives),
// or nothing when there are none.
func appendProperties(dst []byte, p *packets.Properties) []byte {
	if p == nil {
		return dst
	}
	// Presence is asked, not read off the values: a property may be marked
	// present with a zero value (a payload format of 0, say), and then it
	// is sent.
	set := p.Present()
	pf, me := set.Has(packets.PropPayloadFormat), set.Has(packets.PropMessageExpiry)
	ct, rt := set.Has(packets.PropContentType), set.Has(packets.PropResponseTopic)
	cd := set.Has(packets.PropCorrelationData)
	if !pf && !me && !ct && !rt && !cd && len(p.User) == 0 {
		return dst
	}
	dst = append(dst, `,"properties":{`...)
	open := len(dst)
	if ct {
		dst = appendKey(dst, open, "content_type")
		dst = appendString(dst, p.ContentType)
	}
	// Empty correlation data counts as a property but is not written, so
	// it can leave "properties" as {}: that is what the spec's omitempty
	// types have always sent.
	if cd && len(p.CorrelationData) > 0 {
		dst = appendKey(dst, open, "correlation_data")
		dst = appendBase64(dst, p.CorrelationData)
	}
	if me {
		dst = appendKey(dst, open, "message_expiry_interval")
		dst = strconv.AppendUint(dst, uint64(p.MessageExpiry), 10)
	}
	if pf {
		dst = appendKey(dst, open, "payload_format_indicator")
		dst = strconv.AppendUint(dst, uint64(p.PayloadFormat), 10)
	}
	if rt {
		dst = appendKey(dst, open, "response_topic")
		dst = appendString(dst, p.ResponseTopic)
	}
	if len(p.User) > 0 {
		dst = appendKey(dst, open, "user_properties")
		dst = append(dst, '[')
		for i, u := range p.User {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = appendString(dst, u.Key)
			dst = append(dst, `,"value":`...)
			dst = appendString(dst, u.Value)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendKey appends "key": inside an object whose first member would
// start at open, with the comma every later member needs.
func appendKey(dst []byte, open int, key string) []byte {
	if len(dst) > open {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// appendBase64 appends b as a JSON string in standard base64; a nil or
// empty b is "" (the spec's payload is a string, never null).
//
// Payloads are the bulk of a message event, and encoding/base64 writes one
// character per table lookup; here one lookup writes two (b64Pairs), and
// six input bytes, read as one word, become eight characters written as
// one. Base64 maps each 3 bytes to 4 characters on their own, so the last
// few bytes, and the padding, are left to encoding/base64 and the result
// is the same.
func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = slices.Grow(dst, base64.StdEncoding.EncodedLen(len(b))+1)
	for len(b) >= 8 { // the word read takes 8 bytes: the group's 6 and 2 of the next
		w := binary.BigEndian.Uint64(b)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b64Pairs[w>>52])|
			uint64(b64Pairs[w>>40&0xfff])<<16|uint64(b64Pairs[w>>28&0xfff])<<32|uint64(b64Pairs[w>>16&0xfff])<<48)
		b = b[6:]
	}
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// b64Pairs holds, for every 12 bits, the two base64 characters they
// become, the first in the low byte.
var b64Pairs = func() (t [4096]uint16) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for v := range t {
		t[v] = uint16(alphabet[v>>6]) | uint16(alphabet[v&63])<<8
	}
	return t
}()

// jsonSafe marks the ASCII bytes that go into a JSON string as they are.
// Besides what RFC 8259 requires escaped (quote, backslash, control
// characters), <, > and & are escaped as encoding/json does, so that a
// plugin which pastes an event into HTML cannot be handed markup.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// stopByte is 1 for each byte value that is not jsonSafe: from
// utf8.RuneSelf up, where a byte starts or continues a multi-byte rune
// that must be checked, and the ASCII bytes that are escaped. Names, ids
// and topics are usually free of them throughout; looking eight bytes up
// at a time and OR-ing the results finds their end in fewer instructions
// than a loop over single bytes or testing a word's bytes arithmetically
// (the four strings of a message event: 665 instructions, against 830 for
// the word arithmetic).
var stopByte = func() (t [256]uint8) {
	for b := range t {
		if b >= utf8.RuneSelf || !jsonSafe[b] {
			t[b] = 1
		}
	}
	return t
}()

// plainPrefix is how many leading bytes of s go into a JSON string as they
// are.
func plainPrefix(s string) int {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		w := s[i : i+8]
		if stopByte[w[0]]|stopByte[w[1]]|stopByte[w[2]]|stopByte[w[3]]|
			stopByte[w[4]]|stopByte[w[5]]|stopByte[w[6]]|stopByte[w[7]] != 0 {
			break
		}
	}
	for i < len(s) && stopByte[s[i]] == 0 {
		i++
	}
	return i
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// and U+2028 and U+2029 are escaped: they are valid JSON but end a line in
// JavaScript, which breaks an event evaluated as a script.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	done := 0 // s[:done] is in dst
	i := plainPrefix(s)
	for i < len(s) {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[done:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			done = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[done:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}

// appendAttributes appends a client's attributes as a JSON object, keys in
// order as encoding/json writes a map.
func appendAttributes(dst []byte, a map[string]string) []byte {
	dst = append(dst, '{')
	for i, k := range slices.Sorted(maps.Keys(a)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, a[k])
	}
	return append(dst, '}')
}
