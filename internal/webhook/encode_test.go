package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// The reference encoder below is the encoding/json one the plugin used
// before appendEvent: the generated wire types filled in and marshalled.
// It is slow but obviously in step with the spec, so appendEvent is held
// to it, byte for byte, rather than to hand-written expectations.

// refEventJSON is one event on the wire. The spec has a schema per event
// type; they share every field they have, so one struct with the
// type-specific fields optional covers all thirteen.
type refEventJSON struct {
	ID       string            `json:"id"`
	Seq      uint64            `json:"seq"`
	Type     string            `json:"type"`
	Time     string            `json:"time"`
	Broker   string            `json:"broker"`
	ClientID *string           `json:"client_id,omitempty"`
	Attrs    map[string]string `json:"attributes,omitempty"`
	Session  *wire.Session     `json:"session,omitempty"`
	Topic    *string           `json:"topic,omitempty"`
	QoS      *int              `json:"qos,omitempty"`
	Reason   *string           `json:"reason,omitempty"`
	Target   string            `json:"target_client_id,omitempty"`
	Message  *wire.Message     `json:"message,omitempty"`
	Packet   any               `json:"packet,omitempty"`
	Config   *map[string]any   `json:"config,omitempty"`
}

func refEncodeEvent(dst []byte, e *hooks.Event, broker string, config map[string]any) ([]byte, error) {
	j := refEventJSON{
		ID:     e.ID,
		Seq:    e.Seq,
		Type:   e.Type.String(),
		Time:   e.Time.UTC().Format(time.RFC3339Nano),
		Broker: broker,
	}
	if e.Broker != "" {
		j.Broker = e.Broker
	}
	if c := e.Client; c != nil {
		j.ClientID = &c.ClientID
		j.Attrs = c.Attributes()
	}
	switch e.Type {
	case mqtt.EventBrokerPreStart:
		cfg := e.Config
		if cfg == nil {
			cfg = config
		}
		if cfg == nil {
			cfg = map[string]any{}
		}
		j.Config = &cfg
	case mqtt.EventClientConnected, mqtt.EventClientDisconnected, mqtt.EventClientSubscribed, mqtt.EventClientUnsubscribed:
		if e.Client == nil {
			return dst, fmt.Errorf("%s event without a client", e.Type)
		}
		j.Session = session(e.Client)
		switch e.Type {
		case mqtt.EventClientDisconnected:
			j.Reason = &e.Reason
		case mqtt.EventClientSubscribed:
			qos := int(e.QoS)
			j.Topic, j.QoS = &e.Topic, &qos
		case mqtt.EventClientUnsubscribed:
			j.Topic = &e.Topic
		}
	case mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage:
		if e.Message == nil {
			return dst, fmt.Errorf("%s event without a message", e.Type)
		}
		m := e.Message
		j.Message = &wire.Message{Topic: m.Topic, Payload: refNonNil(m.Payload), QOS: int(m.QoS), Retain: m.Retain,
			Properties: refMessageProps(m.Properties)}
		j.Target = e.TargetID
	case mqtt.EventPacketReceived, mqtt.EventPacketSent:
		pk, err := refPacketJSON(e.Packet)
		if err != nil {
			return dst, err
		}
		j.Packet = pk
	}
	if j.ClientID == nil && needsClient(e.Type) {
		return dst, fmt.Errorf("%s event without a client", e.Type)
	}
	b, err := json.Marshal(&j)
	if err != nil {
		return dst, fmt.Errorf("%s event: %w", e.Type, err)
	}
	return append(dst, b...), nil
}

func refNonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type refAckJSON struct {
	PacketType string `json:"packet_type"`
	PacketID   int    `json:"packet_id"`
	ReasonCode int    `json:"reason_code"`
}

func refPacketJSON(pk packets.Packet) (any, error) {
	switch p := pk.(type) {
	case *packets.Connect:
		c := wire.ConnectPacket{PacketType: "connect", ProtocolVersion: wire.ProtocolVersion(p.ProtocolVersion),
			ClientID: p.ClientID, Username: p.Username, PasswordPresent: p.PasswordFlag,
			CleanStart: p.CleanStart, KeepAlive: int(p.KeepAlive)}
		if p.WillFlag {
			c.Will = &wire.Will{Topic: p.WillTopic, QOS: int(p.WillQoS), Retain: p.WillRetain, Payload: refNonNil(p.WillPayload)}
		}
		return c, nil
	case *packets.Connack:
		return wire.ConnackPacket{PacketType: "connack", SessionPresent: p.SessionPresent, ReasonCode: int(p.ReasonCode)}, nil
	case *packets.Publish:
		return wire.PublishPacket{PacketType: "publish", Topic: p.Topic, QOS: int(p.QoS), Retain: p.Retain, Dup: p.Dup,
			PacketID: int(p.PacketID), Payload: refNonNil(p.Payload), Properties: refMessageProps(&p.Props)}, nil
	case *packets.Puback:
		return refAckJSON{"puback", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubrec:
		return refAckJSON{"pubrec", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubrel:
		return refAckJSON{"pubrel", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Pubcomp:
		return refAckJSON{"pubcomp", int(p.PacketID), int(p.ReasonCode)}, nil
	case *packets.Subscribe:
		subs := make([]wire.Subscription, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			subs[i] = wire.Subscription{TopicFilter: s.Filter, QOS: int(s.QoS), NoLocal: s.NoLocal,
				RetainAsPublished: s.RetainAsPublished, RetainHandling: int(s.RetainHandling)}
		}
		return wire.SubscribePacket{PacketType: "subscribe", PacketID: int(p.PacketID), Subscriptions: subs}, nil
	case *packets.Suback:
		return wire.SubackPacket{PacketType: "suback", PacketID: int(p.PacketID), ReasonCodes: refCodes(p.ReasonCodes)}, nil
	case *packets.Unsubscribe:
		return wire.UnsubscribePacket{PacketType: "unsubscribe", PacketID: int(p.PacketID),
			TopicFilters: append([]string{}, p.Filters...)}, nil
	case *packets.Unsuback:
		return wire.UnsubackPacket{PacketType: "unsuback", PacketID: int(p.PacketID), ReasonCodes: refCodes(p.ReasonCodes)}, nil
	case *packets.Pingreq:
		return wire.PingreqPacket{PacketType: "pingreq"}, nil
	case *packets.Pingresp:
		return wire.PingrespPacket{PacketType: "pingresp"}, nil
	case *packets.Disconnect:
		return wire.DisconnectPacket{PacketType: "disconnect", ReasonCode: int(p.ReasonCode)}, nil
	case *packets.Auth:
		return wire.AuthPacket{PacketType: "auth", ReasonCode: int(p.ReasonCode), Method: p.Props.AuthMethod}, nil
	}
	return nil, fmt.Errorf("packet event without a known packet (%T)", pk)
}

func refCodes(rcs []packets.ReasonCode) []int {
	out := make([]int, len(rcs))
	for i, rc := range rcs {
		out[i] = int(rc)
	}
	return out
}

func refMessageProps(p *packets.Properties) *wire.MessageProperties {
	if p == nil {
		return nil
	}
	var m wire.MessageProperties
	some := false
	if p.Has(packets.PropPayloadFormat) {
		v := int(p.PayloadFormat)
		m.PayloadFormatIndicator, some = &v, true
	}
	if p.Has(packets.PropMessageExpiry) {
		v := int64(p.MessageExpiry)
		m.MessageExpiryInterval, some = &v, true
	}
	if p.Has(packets.PropContentType) {
		m.ContentType, some = &p.ContentType, true
	}
	if p.Has(packets.PropResponseTopic) {
		m.ResponseTopic, some = &p.ResponseTopic, true
	}
	if p.Has(packets.PropCorrelationData) {
		m.CorrelationData, some = refNonNil(p.CorrelationData), true
	}
	for _, u := range p.User {
		m.UserProperties, some = append(m.UserProperties, wire.UserProperty{Key: u.Key, Value: u.Value}), true
	}
	if !some {
		return nil
	}
	return &m
}

// oddStrings are strings an encoder gets wrong: every kind of escape, HTML
// characters, the JavaScript line separators, multi-byte and invalid
// UTF-8 (truncated, overlong, surrogate, lone continuation byte).
var oddStrings = []string{
	"", "plain", `"quoted"`, `back\slash`, "/solidus/", "tab\there", "nl\ncr\r", "\b\f", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "\u2028\u2029", "héllo wörld", "日本語", "🙂 emoji", "\U0010FFFF", "\ufffd",
	"\xff", "bad\xc3(utf8", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\x80tail", "a\u2028b\xffc<d",
}

// encodeCases is every event type and every packet type, each with odd
// strings, nil and empty slices, and MQTT 5 properties in their
// combinations.
func encodeCases() []*hooks.Event {
	evs := allEvents()
	add := func(e *hooks.Event) { evs = append(evs, e) }
	propsOf := func(fill func(*packets.Properties)) *packets.Properties {
		var p packets.Properties
		fill(&p)
		return &p
	}
	propSets := []*packets.Properties{
		nil,
		{},
		propsOf(func(p *packets.Properties) { p.Set(packets.PropPayloadFormat) }), // present though zero
		propsOf(func(p *packets.Properties) { p.Set(packets.PropMessageExpiry) }),
		propsOf(func(p *packets.Properties) { p.Set(packets.PropContentType) }),
		propsOf(func(p *packets.Properties) { p.Set(packets.PropResponseTopic) }),
		propsOf(func(p *packets.Properties) { p.CorrelationData = []byte{} }), // present but empty: {}
		propsOf(func(p *packets.Properties) { p.Set(packets.PropCorrelationData) }),
		propsOf(func(p *packets.Properties) { p.User = []packets.UserProperty{} }),
		propsOf(func(p *packets.Properties) { p.User = []packets.UserProperty{{}} }),
		propsOf(func(p *packets.Properties) {
			p.PayloadFormat, p.MessageExpiry, p.ContentType, p.ResponseTopic = 1, 1<<32-1, "text/<html>", "r/\u2028"
			p.CorrelationData = []byte{0, 0xff, 0xfe}
			p.User = []packets.UserProperty{{Key: "k\"", Value: "v\x00"}, {Key: "\xff", Value: "日本"}, {Key: "k", Value: "v"}}
		}),
		// Properties that do not belong to a message stay out.
		propsOf(func(p *packets.Properties) { p.SessionExpiry, p.AuthMethod, p.ReasonString = 9, "m", "why" }),
	}
	for i, s := range oddStrings {
		c := &mqtt.ClientInfo{ClientID: s, Username: s, RemoteAddr: s, Listener: s, Transport: s,
			ProtocolVersion: byte(3 + i%3), CleanStart: i%2 == 0, KeepAlive: uint16(i * 4099)}
		var payload []byte
		switch i % 3 {
		case 1:
			payload = []byte{}
		case 2:
			payload = []byte(s)
		}
		props := propSets[i%len(propSets)]
		for t := range mqtt.EventTypes() {
			e := &hooks.Event{ID: s, Seq: uint64(i) << (i * 3 % 64), Type: mqtt.EventType(t), Broker: s,
				Time: time.Unix(int64(i)*1e8, int64(i*i*1000)), Client: c, Topic: s, QoS: byte(i % 3), Reason: s,
				TargetID: s, Message: &hooks.Message{Topic: s, Payload: payload, QoS: byte(i % 3), Retain: i%2 == 1, Properties: props}}
			switch e.Type {
			case mqtt.EventBrokerPreStart:
				e.Config = map[string]any{s: s, "n": i, "list": []any{s, nil, true}}
			case mqtt.EventPacketReceived, mqtt.EventPacketSent:
				e.Packet = &packets.Publish{Topic: s, Payload: payload, QoS: byte(i % 3), Dup: i%2 == 0, PacketID: uint16(i)}
				if props != nil {
					e.Packet.(*packets.Publish).Props = *props
				}
			}
			add(e)
		}
		c2 := mqttClient("c", "u")
		c2.SetLogin(&mqtt.Login{Attributes: map[string]string{s: s, "tenant": "<a&b>", "": "\u2028"}})
		for _, pk := range []packets.Packet{
			&packets.Connect{ClientID: s, Username: s, WillFlag: true, WillTopic: s, WillPayload: payload, WillRetain: true, WillQoS: 2},
			&packets.Connect{ClientID: s, Username: s, WillTopic: "not sent without the flag"},
			&packets.Subscribe{Subscriptions: []packets.Subscription{{Filter: s, RetainAsPublished: true}, {Filter: "b", QoS: 2}}},
			&packets.Subscribe{Subscriptions: []packets.Subscription{}},
			&packets.Unsubscribe{PacketID: 65535, Filters: []string{s, s + "/x"}},
			&packets.Unsubscribe{Filters: []string{}},
			&packets.Suback{ReasonCodes: []packets.ReasonCode{}},
			&packets.Unsuback{ReasonCodes: []packets.ReasonCode{0x11, 0xff}},
			&packets.Auth{Props: packets.Properties{AuthMethod: s}},
			&packets.Connack{ReasonCode: 0xff},
		} {
			add(&hooks.Event{ID: s, Type: mqtt.EventPacketSent, Client: c2, Packet: pk})
		}
	}
	// Events the encoder refuses, and lifecycle events without a broker
	// name (the configured one stands in) or with no config at all.
	for _, t := range mqtt.EventTypes() {
		add(&hooks.Event{Type: t})
	}
	add(&hooks.Event{Type: mqtt.EventPacketReceived, Client: mqttClient("c", "u")})
	add(&hooks.Event{Type: mqtt.EventBrokerPreStart, Config: map[string]any{"f": func() {}}})
	add(&hooks.Event{Type: mqtt.EventType(200), ID: "from the future"})
	return evs
}

// checkEncode encodes e with both encoders into a buffer that already
// holds a prefix, and requires the same error, the prefix untouched, and
// the same JSON: semantically, and byte for byte, which also pins the
// HTML-safe escaping that a semantic comparison cannot see.
func checkEncode(t *testing.T, e *hooks.Event, broker string, config map[string]any) {
	t.Helper()
	prefix := `{"events":[`
	want, werr := refEncodeEvent([]byte(prefix), e, broker, config)
	got, gerr := appendEvent([]byte(prefix), e, broker, config)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%s: error %v, want %v", e.Type, gerr, werr)
	}
	if !bytes.HasPrefix(got, []byte(prefix)) {
		t.Fatalf("%s: the prefix was overwritten: %q", e.Type, got)
	}
	if gerr != nil {
		if len(got) != len(prefix) {
			t.Fatalf("%s: failed but appended %q", e.Type, got[len(prefix):])
		}
		return
	}
	got, want = got[len(prefix):], want[len(prefix):]
	if !json.Valid(got) {
		t.Fatalf("%s: invalid JSON %q", e.Type, got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: not the same JSON\n got %s\nwant %s", e.Type, got, want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: same JSON, different bytes\n got %s\nwant %s", e.Type, got, want)
	}
}

func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	cases := encodeCases()
	for _, e := range cases {
		checkEncode(t, e, "node-<1>", nil)
		checkEncode(t, e, "", map[string]any{"realm": "configured"})
	}
	t.Logf("%d events", len(cases))
}

func TestEncodeEventGrowsNothingWithRoom(t *testing.T) {
	e := allEvents()[8]
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = appendEvent(buf[:0], e, "node-1", nil)
	}); n != 0 {
		t.Fatalf("%v allocations per broker_message_received with room in dst, want 0", n)
	}
}

// FuzzEncodeEvent builds an event of any type (packet events with any
// packet type) from fuzzed strings, payloads and numbers, and requires
// appendEvent to agree with the encoding/json reference and to write
// valid JSON. Seeds live in testdata/fuzz/FuzzEncodeEvent.
func FuzzEncodeEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ, packet uint8, id, clientID, topic, text string, payload, corr []byte,
		seq uint64, sec, nsec int64, flags uint16) {
		c := &mqtt.ClientInfo{ClientID: clientID, Username: text, RemoteAddr: text, Listener: topic, Transport: id,
			ProtocolVersion: byte(flags), CleanStart: flags&1 != 0, KeepAlive: flags}
		if flags&1024 != 0 {
			corr = nil // absent correlation data, where empty is present
		}
		var props *packets.Properties
		if flags&2 != 0 {
			props = &packets.Properties{ContentType: text, ResponseTopic: topic, CorrelationData: corr,
				PayloadFormat: byte(flags >> 8), MessageExpiry: uint32(seq)}
			if flags&4 != 0 {
				props.User = []packets.UserProperty{{Key: text, Value: id}, {Key: topic, Value: clientID}}
			}
			if flags&2048 != 0 { // present even where zero or empty
				for _, id := range []packets.PropID{packets.PropPayloadFormat, packets.PropMessageExpiry,
					packets.PropContentType, packets.PropResponseTopic, packets.PropCorrelationData} {
					props.Set(id)
				}
			}
		}
		if flags&8 != 0 {
			payload = nil
		}
		e := &hooks.Event{ID: id, Seq: seq, Type: mqtt.EventType(typ % 14), Time: time.Unix(sec, nsec), Broker: text,
			Topic: topic, QoS: byte(flags >> 4), Reason: text, TargetID: clientID,
			Message: &hooks.Message{Topic: topic, Payload: payload, QoS: byte(flags >> 5), Retain: flags&16 != 0, Properties: props},
			Config:  map[string]any{text: id, topic: []any{clientID, float64(seq)}}}
		if flags&32 == 0 {
			e.Client = c
		}
		qos, id16, rc := byte(flags>>6), uint16(seq), packets.ReasonCode(flags>>7)
		pks := []packets.Packet{
			&packets.Connect{ProtocolVersion: packets.Version(flags), ClientID: clientID, Username: text, PasswordFlag: flags&64 != 0,
				Password: payload, KeepAlive: flags, CleanStart: flags&1 != 0, WillFlag: flags&128 != 0, WillTopic: topic,
				WillQoS: qos, WillRetain: flags&256 != 0, WillPayload: corr},
			&packets.Connack{SessionPresent: flags&1 != 0, ReasonCode: rc},
			&packets.Publish{Topic: topic, QoS: qos, Retain: flags&1 != 0, Dup: flags&64 != 0, PacketID: id16, Payload: payload},
			&packets.Puback{PacketID: id16, ReasonCode: rc},
			&packets.Pubrec{PacketID: id16, ReasonCode: rc},
			&packets.Pubrel{PacketID: id16, ReasonCode: rc},
			&packets.Pubcomp{PacketID: id16, ReasonCode: rc},
			&packets.Subscribe{PacketID: id16, Subscriptions: []packets.Subscription{{Filter: topic, QoS: qos,
				NoLocal: flags&64 != 0, RetainAsPublished: flags&128 != 0, RetainHandling: byte(flags >> 9)}, {Filter: text}}[:flags%3]},
			&packets.Suback{PacketID: id16, ReasonCodes: reasonCodes(corr)},
			&packets.Unsubscribe{PacketID: id16, Filters: strings.Split(text, "\x00")},
			&packets.Unsuback{PacketID: id16, ReasonCodes: reasonCodes(payload)},
			&packets.Pingreq{},
			&packets.Pingresp{},
			&packets.Disconnect{ReasonCode: rc},
			&packets.Auth{ReasonCode: rc, Props: packets.Properties{AuthMethod: text, AuthData: payload}},
			nil,
		}
		e.Packet = pks[int(packet)%len(pks)]
		if pub, ok := e.Packet.(*packets.Publish); ok && props != nil {
			pub.Props = *props
		}
		checkEncode(t, e, id, nil)
	})
}

// reasonCodes reads b as reason codes, nil for nil.
func reasonCodes(b []byte) []packets.ReasonCode {
	if b == nil {
		return nil
	}
	rcs := make([]packets.ReasonCode, len(b))
	for i, c := range b {
		rcs[i] = packets.ReasonCode(c)
	}
	return rcs
}

func BenchmarkEncodeEventReference(b *testing.B) {
	e := allEvents()[8]
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = refEncodeEvent(buf[:0], e, "node-1", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// appendString writes what encoding/json writes for every byte in every
// position of a string, so its scan for plain bytes lets nothing through
// that needs escaping.
func TestAppendStringEveryByteEveryPosition(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvwx") // three words
	for pos := range base {
		for b := range 256 {
			s := slices.Clone(base)
			s[pos] = byte(b)
			want, _ := json.Marshal(string(s))
			if got := appendString(nil, string(s)); !bytes.Equal(got, want) {
				t.Fatalf("byte %#x at %d: got %s, want %s", b, pos, got, want)
			}
		}
	}
}

// appendTime writes what time.RFC3339Nano writes, across second
// boundaries (where its cache changes) and for every fraction length.
func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	zone := time.FixedZone("X", -5*3600)
	start := time.Date(2026, 12, 31, 23, 59, 58, 0, zone)
	for _, t0 := range []time.Time{start, time.Unix(0, 0), time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		for _, d := range []time.Duration{0, 1, 10, 120, 1000, 1e6 + 7, 5e8, 999999999, 1e9, 1e9 + 1, 2e9 + 30} {
			tm := t0.Add(d)
			want := tm.UTC().Format(time.RFC3339Nano)
			if got := string(appendTime(nil, tm)); got != want {
				t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
			}
		}
	}
}

// appendBase64 writes what encoding/base64 writes, for every length up to
// a few words past its fast loop's reach and any bytes, into buffers with
// and without room.
func TestAppendBase64MatchesEncodingBase64(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		for round := range 20 {
			b := make([]byte, n)
			for i := range b {
				switch round {
				case 0: // all zero
				case 1:
					b[i] = 0xff
				default:
					b[i] = byte(rnd.Uint32())
				}
			}
			want := `x"` + base64.StdEncoding.EncodeToString(b) + `"`
			for _, dst := range [][]byte{[]byte("x"), append(make([]byte, 0, 1024), 'x')} {
				if got := appendBase64(dst, b); string(got) != want {
					t.Fatalf("% x:\n got %s\nwant %s", b, got, want)
				}
			}
		}
	}
}

func BenchmarkBase64(b *testing.B) {
	src := make([]byte, 64)
	for i := range src {
		src[i] = byte(i * 7)
	}
	buf := make([]byte, 0, 256)
	b.Run("appendBase64", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			buf = appendBase64(buf[:0], src)
		}
	})
	b.Run("encoding-base64", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			buf = append(base64.StdEncoding.AppendEncode(append(buf[:0], '"'), src), '"')
		}
	})
}
