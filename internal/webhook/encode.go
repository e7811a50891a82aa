package webhook

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
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
	dst = appendString(dst, e.Type.String())
	dst = append(dst, `,"time":"`...)
	// The layout only ever writes digits, signs, 'T', ':', '.' and 'Z', none
	// of which needs escaping.
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","broker":`...)
	dst = appendString(dst, broker)
	if c := e.Client; c != nil {
		dst = append(dst, `,"client_id":`...)
		dst = appendString(dst, c.ClientID)
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
	// Has is asked once per property: a property may be marked present
	// with a zero value (a payload format of 0, say), and then it is sent.
	pf, me := p.Has(packets.PropPayloadFormat), p.Has(packets.PropMessageExpiry)
	ct, rt := p.Has(packets.PropContentType), p.Has(packets.PropResponseTopic)
	cd := p.Has(packets.PropCorrelationData)
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
func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

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

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// and U+2028 and U+2029 are escaped: they are valid JSON but end a line in
// JavaScript, which breaks an event evaluated as a script.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	done := 0 // s[:done] is in dst
	for i := 0; i < len(s); {
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
