package hooks

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// decodeInto decodes a whole packet from buf, aliasing it as the broker's
// decoder does.
func decodeInto(t *testing.T, buf []byte, v packets.Version) packets.Packet {
	t.Helper()
	fh, n, err := packets.DecodeFixedHeader(buf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := packets.Decode(fh, buf[n:], v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The Event a sink gets owns everything: scribbling over the broker's
// buffers after the call changes nothing the sink kept, packets included.
func TestEventIsAnOwnedCopy(t *testing.T) {
	rec := &recorder{mask: eventsOf(mqtt.EventMessageReceived, mqtt.EventPacketReceived)}
	m := mustNew(t, Options{Broker: "node-1", Plugins: map[string]PluginSpec{"rec": {Plugin: rec}}})

	pub := packets.Publish{Topic: "a/b", Payload: []byte("hello"), QoS: 1, PacketID: 7}
	pub.Props.ContentType = "text/plain"
	pub.Props.Set(packets.PropContentType)
	raw, err := pub.Append(nil, packets.V5)
	if err != nil {
		t.Fatal(err)
	}
	decoded := decodeInto(t, raw, packets.V5).(*packets.Publish)
	props := decoded.Props.Clone()
	client := &mqtt.ClientInfo{ClientID: "c1", Username: "u", ProtocolVersion: 5}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventMessageReceived, Time: at, Client: client, Topic: decoded.Topic, QoS: 1,
		Message: &mqtt.Message{Topic: decoded.Topic, Payload: decoded.Payload, QoS: 1, Props: props}})
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventPacketReceived, Client: client, Packet: decoded})

	for i := range raw {
		raw[i] = 'X'
	}
	props.ContentType = "scribbled"
	client.ClientID = "changed"

	evs := rec.events()
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	msg := evs[0]
	if msg.Topic != "a/b" || msg.Message.Topic != "a/b" || string(msg.Message.Payload) != "hello" ||
		msg.Message.Properties.ContentType != "text/plain" || msg.Client.ClientID != "c1" {
		t.Fatalf("message event changed with the broker's buffers: %+v %+v", msg, msg.Message)
	}
	if !msg.Time.Equal(at) || msg.Time.Location() != time.UTC || msg.Broker != "node-1" {
		t.Fatalf("time %v broker %q, want %v in UTC and node-1", msg.Time, msg.Broker, at)
	}
	pk, ok := evs[1].Packet.(*packets.Publish)
	if !ok || pk.Topic != "a/b" || string(pk.Payload) != "hello" || pk.PacketID != 7 || pk.Props.ContentType != "text/plain" {
		t.Fatalf("packet event changed with the broker's buffers: %+v", evs[1].Packet)
	}
}

// Ids are unique and seq increases in the order events are built; each
// sink that wants a type gets the same pointer, others nothing; with no
// sink wanting a type, no event is built at all.
func TestEventFanOut(t *testing.T) {
	a := &recorder{mask: eventsOf(mqtt.EventClientConnected, mqtt.EventClientDisconnected)}
	b := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"a": {Plugin: a}, "b": {Plugin: b}}})
	ev := m.Hooks().Events
	for range 3 {
		ev.Event(&mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{}})
		ev.Event(&mqtt.Event{Type: mqtt.EventClientDisconnected, Client: &mqtt.ClientInfo{}, Reason: "eof"})
	}
	built := m.seq.Load()
	ev.Event(&mqtt.Event{Type: mqtt.EventMessageReceived, Message: &mqtt.Message{}})
	if m.seq.Load() != built {
		t.Fatal("an event nobody wants was built")
	}
	as, bs := a.events(), b.events()
	if len(as) != 6 || len(bs) != 3 {
		t.Fatalf("a got %d, b %d; want 6 and 3", len(as), len(bs))
	}
	ids := map[string]bool{}
	for i, e := range as {
		if ids[e.ID] || !strings.Contains(e.ID, "-") {
			t.Fatalf("id %q repeated or malformed", e.ID)
		}
		ids[e.ID] = true
		if i > 0 && e.Seq <= as[i-1].Seq {
			t.Fatalf("seq %d after %d", e.Seq, as[i-1].Seq)
		}
	}
	for i, e := range bs {
		if e != as[2*i] {
			t.Fatalf("sinks got different copies of event %d", i)
		}
	}
}

// broker_pre_start reaches every plugin with a config block, subscribed or
// not, carrying that plugin's own config; a subscriber without one gets
// it without config.
func TestPreStartCarriesEachPluginsConfig(t *testing.T) {
	cfgA, cfgB := &recorder{}, &recorder{mask: eventsOf(mqtt.EventBrokerPreStart)}
	plain := &recorder{mask: eventsOf(mqtt.EventBrokerPreStart)}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{
		"a":     {Plugin: cfgA, Config: map[string]any{"realm": "A"}},
		"b":     {Plugin: cfgB, Config: map[string]any{"realm": "B"}},
		"plain": {Plugin: plain},
	}})
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventBrokerPreStart})
	for _, tc := range []struct {
		r     *recorder
		realm any
	}{{cfgA, "A"}, {cfgB, "B"}, {plain, nil}} {
		evs := tc.r.events()
		if len(evs) != 1 || evs[0].Type != mqtt.EventBrokerPreStart || evs[0].Config["realm"] != tc.realm {
			t.Fatalf("got %+v, want one broker_pre_start with realm %v", evs, tc.realm)
		}
	}
	if a, p := cfgA.events()[0], plain.events()[0]; a.ID != p.ID || a.Seq != p.Seq {
		t.Fatal("the per-plugin copies of one broker_pre_start differ in id or seq")
	}
}

type panicky struct{ recorder }

func (p *panicky) Event(*Event) { panic("sink bug") }

// A sink that panics loses the event; the broker and the other sinks carry
// on, and the panic is counted.
func TestSinkPanicIsContained(t *testing.T) {
	bad := &panicky{recorder{mask: eventsOf(mqtt.EventClientConnected)}}
	good := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"bad": {Plugin: bad}, "good": {Plugin: good}}})
	for range 3 {
		m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{}})
	}
	if n := len(good.events()); n != 3 {
		t.Fatalf("good sink got %d events, want 3", n)
	}
	if got := counterValue(m.metrics.eventPanics.WithLabelValues("bad")); got != 3 {
		t.Fatalf("panics counted %v, want 3", got)
	}
}

// Packets the broker refuses with before it knows the version, and packets
// of every family, round-trip into owned copies.
func TestOwnPacket(t *testing.T) {
	for _, tc := range []struct {
		p packets.Packet
		v packets.Version
	}{
		{&packets.Connect{ProtocolVersion: packets.V311, ClientID: "c", CleanStart: true, KeepAlive: 30}, packets.V311},
		{&packets.Connect{ProtocolVersion: packets.V31, ClientID: "c", CleanStart: true}, packets.V31},
		{&packets.Connack{ReasonCode: packets.NotAuthorized}, 0},
		{&packets.Connack{ReasonCode: packets.ConnRefusedNotAuthorized}, 0},
		{&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "a/#", QoS: 1}}}, packets.V5},
		{&packets.Suback{PacketID: 1, ReasonCodes: []packets.ReasonCode{0x80}}, packets.V311},
		{&packets.Pingreq{}, packets.V311},
	} {
		own := ownPacket(tc.p, tc.v)
		if own == nil || own.Type() != tc.p.Type() {
			t.Fatalf("%T: got %v", tc.p, own)
		}
		a, _ := tc.p.Append(nil, packets.V5)
		b, _ := own.Append(nil, packets.V5)
		if !bytes.Equal(a, b) {
			t.Fatalf("%T: copy encodes as % x, original as % x", tc.p, b, a)
		}
	}
}

// snapshot is what a borrowing sink copies out of an event during the call.
type snapshot struct {
	id, topic, payload, client string
	seq                        uint64
	time                       time.Time
}

// borrower is an BorrowingEventPlugin that copies what it needs while it may, and
// panics on request.
type borrower struct {
	mask  mqtt.EventMask
	panic bool
	mu    sync.Mutex
	got   []snapshot
	plain int // Event calls, which the framework must not make
}

func (b *borrower) Wants() mqtt.EventMask { return b.mask }
func (b *borrower) Event(*Event) {
	b.mu.Lock()
	b.plain++
	b.mu.Unlock()
}
func (b *borrower) BorrowEvent(e *Event) {
	if b.panic {
		panic("borrower")
	}
	s := snapshot{id: strings.Clone(e.ID), topic: strings.Clone(e.Topic), seq: e.Seq, time: e.Time}
	if e.Message != nil {
		s.payload = string(e.Message.Payload)
	}
	if e.Client != nil {
		s.client = e.Client.ClientID
	}
	b.mu.Lock()
	b.got = append(b.got, s)
	b.mu.Unlock()
}

// A borrowing sink gets the broker's event as it is, stamped with the same
// id, seq and time as the owned copy other sinks get of the same event; a
// panicking borrower loses the event without harming the others.
func TestBorrowEventSharesStampsWithTheOwnedCopy(t *testing.T) {
	mask := eventsOf(mqtt.EventMessageReceived)
	rec, now, bad := &recorder{mask: mask}, &borrower{mask: mask}, &borrower{mask: mask, panic: true}
	m := mustNew(t, Options{Broker: "node-1", Plugins: map[string]PluginSpec{"rec": {Plugin: rec}, "now": {Plugin: now}, "bad": {Plugin: bad}}})
	payload := []byte("hello")
	for i := range 3 {
		m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventMessageReceived, Client: &mqtt.ClientInfo{ClientID: "c"}, Topic: "a/b",
			Message: &mqtt.Message{Topic: "a/b", Payload: payload}})
		payload[0] = byte('0' + i) // the broker reuses its buffer
	}
	owned := rec.events()
	if len(owned) != 3 || len(now.got) != 3 || now.plain != 0 || bad.plain != 0 {
		t.Fatalf("owned %d, borrowed %d, plain calls %d/%d; want 3, 3, 0/0", len(owned), len(now.got), now.plain, bad.plain)
	}
	for i, s := range now.got {
		o := owned[i]
		want := snapshot{id: o.ID, topic: o.Topic, payload: string(o.Message.Payload), client: o.Client.ClientID, seq: o.Seq, time: o.Time}
		if s != want {
			t.Errorf("event %d: borrowed %+v, owned %+v", i, s, want)
		}
	}
	if now.got[0].payload != "hello" || now.got[1].payload != "0ello" {
		t.Errorf("borrowed payloads %q %q, want what the buffer held at each call", now.got[0].payload, now.got[1].payload)
	}
	if n := counterValue(m.metrics.eventPanics.WithLabelValues("bad")); n != 3 {
		t.Errorf("bad's panics counted %v, want 3", n)
	}
}

// Handing an event to borrowing sinks only costs no allocation.
func TestBorrowEventDoesNotAllocate(t *testing.T) {
	b := &borrower{mask: eventsOf(mqtt.EventMessageReceived)}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"b": {Plugin: discardBorrowing{b.mask}}}})
	e := &mqtt.Event{Type: mqtt.EventMessageReceived, Time: time.Now(), Client: &mqtt.ClientInfo{ClientID: "c"}, Topic: "a/b",
		Message: &mqtt.Message{Topic: "a/b", Payload: []byte("hello")}}
	if n := testing.AllocsPerRun(1000, func() { m.Hooks().Events.Event(e) }); n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

type discardBorrowing struct{ mask mqtt.EventMask }

func (d discardBorrowing) Wants() mqtt.EventMask { return d.mask }
func (discardBorrowing) Event(*Event)            {}
func (discardBorrowing) BorrowEvent(*Event)      {}
