package hooks

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// eventFan is the broker's mqtt.EventSink: it turns each broker event into
// one owned Event and hands the same pointer to every plugin that wants it.
type eventFan struct{ m *Manager }

// Wants is what the current plugins want now. Sinks may narrow their set
// while running (an HTTP plugin once its manifest has answered), and the
// broker re-reads this every second, so it stops building what nobody
// wants.
func (f *eventFan) Wants() mqtt.EventMask {
	st := f.m.acquire()
	defer st.release()
	return st.wantsNow()
}

// Event hands e to the sinks that want its type: sinks that take borrowed
// events (BorrowingEventPlugin) get it as it is, stamped; the others share one
// owned copy, since e aliases the broker's buffers. It runs on the
// broker's goroutines and never blocks on a plugin beyond the plugin's own
// (non-blocking) Event.
func (f *eventFan) Event(e *mqtt.Event) {
	st := f.m.acquire()
	defer st.release()
	var stamped stamp // taken when the first sink wants e: events nobody wants use no seq
	var owned *Event
	var lent *lentEvent
	for _, p := range st.sinks {
		withConf := e.Type == mqtt.EventBrokerPreStart && p.config != nil
		if !withConf && !p.sink.Wants().Has(e.Type) {
			continue
		}
		if stamped.seq == 0 {
			stamped = f.m.stamp(e)
		}
		var ev *Event
		if p.borrow != nil {
			if lent == nil {
				lent = f.m.lend(e, stamped)
			}
			ev = &lent.ev
		} else {
			if owned == nil {
				owned = f.m.own(e, stamped)
			}
			ev = owned
		}
		if withConf {
			ev = withConfig(ev, p.config)
		}
		p.deliver(ev)
	}
	if lent != nil {
		lent.release()
	}
}

// wantsNow is the union of what the sinks want at this moment, plus
// broker_pre_start for plugins with a config block (docs/design.md §4: it is sent
// to them whether they subscribed or not).
func (st *state) wantsNow() mqtt.EventMask {
	var m mqtt.EventMask
	for _, p := range st.sinks {
		m |= p.sink.Wants()
		if p.config != nil {
			m = m.With(mqtt.EventBrokerPreStart)
		}
	}
	return m
}

// withConfig is broker_pre_start for one plugin: the shared event plus the
// plugin's own config block (docs/design.md §4).
func withConfig(ev *Event, config map[string]any) *Event {
	cp := *ev
	cp.Config = config
	return &cp
}

// deliver hands ev to p's sink. A sink that panics loses the event, is
// counted and logged, and the broker carries on.
func (p *plugin) deliver(ev *Event) {
	defer func() {
		if v := recover(); v != nil {
			p.counters.panics.Inc()
			p.warn("plugin panicked on an event; the event is lost to it", "event", ev.Type.String(), "panic", v)
		}
	}()
	p.counters.events.Inc()
	if p.borrow != nil {
		p.borrow.BorrowEvent(ev)
		return
	}
	p.sink.Event(ev)
}

// newIDPrefix returns the random part of event ids: 64 bits per process, so
// ids from different brokers and restarts do not collide.
func newIDPrefix() string {
	var r [8]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:]) + "-"
}

// owned is an Event with room for the copies it points to, so building
// one costs one allocation for the structs and one for the bytes.
type owned struct {
	ev  Event
	ci  mqtt.ClientInfo
	msg Message
}

// lentEvent is a borrowed Event with room for what it cannot borrow from
// the broker's: its Message and its id. They are pooled, so lending costs
// no allocation.
type lentEvent struct {
	ev  Event
	msg Message
	id  [48]byte // idPrefix (17 bytes) and up to 16 hex digits of seq
}

var lentEvents = sync.Pool{New: func() any { return new(lentEvent) }}

// lend stamps e as own does but copies nothing: the result aliases e and
// is valid until release, for BorrowingEventPlugin sinks only.
func (m *Manager) lend(e *mqtt.Event, st stamp) *lentEvent {
	l := lentEvents.Get().(*lentEvent)
	id := strconv.AppendUint(append(l.id[:0], m.idPrefix...), st.seq, 16)
	l.ev = Event{
		ID:       unsafe.String(unsafe.SliceData(id), len(id)),
		Seq:      st.seq,
		Type:     e.Type,
		Time:     st.time,
		Broker:   m.broker,
		Client:   e.Client,
		Topic:    e.Topic,
		QoS:      e.QoS,
		Packet:   e.Packet,
		Reason:   e.Reason,
		TargetID: e.TargetID,
	}
	if msg := e.Message; msg != nil {
		l.msg = Message{Topic: msg.Topic, Payload: msg.Payload, QoS: msg.QoS, Retain: msg.Retain, Properties: msg.Props}
		l.ev.Message = &l.msg
	}
	return l
}

// release returns l to the pool, keeping nothing of the broker's alive.
func (l *lentEvent) release() {
	l.ev, l.msg = Event{}, Message{}
	lentEvents.Put(l)
}

// stamp is what every sink's copy of one event shares: its seq (and so
// its id) and when the broker saw it, in UTC.
type stamp struct {
	seq  uint64
	time time.Time
}

func (m *Manager) stamp(e *mqtt.Event) stamp {
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return stamp{seq: m.seq.Add(1), time: t.UTC()}
}

// own builds the owned copy of e, stamped with id, seq, time and broker.
// Strings and bytes that may alias a read buffer are copied; packets are
// re-encoded and decoded from a buffer of their own.
func (m *Manager) own(e *mqtt.Event, st stamp) *Event {
	seq := st.seq
	var payload []byte
	if e.Message != nil {
		payload = e.Message.Payload
	}
	// The id, the topic and the payload share one buffer, which is never
	// appended to beyond the capacity reserved here.
	buf := make([]byte, 0, len(m.idPrefix)+16+len(e.Topic)+len(payload))
	buf = strconv.AppendUint(append(buf, m.idPrefix...), seq, 16)
	idEnd := len(buf)
	buf = append(buf, e.Topic...)
	topicEnd := len(buf)
	buf = append(buf, payload...)

	o := &owned{}
	ev := &o.ev
	*ev = Event{
		ID:       unsafe.String(unsafe.SliceData(buf), idEnd),
		Seq:      seq,
		Type:     e.Type,
		Time:     st.time,
		Broker:   m.broker,
		Topic:    unsafe.String(unsafe.SliceData(buf[idEnd:]), topicEnd-idEnd),
		QoS:      e.QoS,
		Reason:   strings.Clone(e.Reason),
		TargetID: strings.Clone(e.TargetID),
	}
	if e.Client != nil {
		o.ci = *e.Client // its slices are immutable once a hook sees it (mqtt.ClientInfo)
		ev.Client = &o.ci
	}
	if msg := e.Message; msg != nil {
		o.msg = Message{Topic: ev.Topic, QoS: msg.QoS, Retain: msg.Retain}
		if payload != nil {
			o.msg.Payload = buf[topicEnd:len(buf):len(buf)]
		}
		if msg.Topic != e.Topic {
			o.msg.Topic = strings.Clone(msg.Topic)
		}
		if msg.Props != nil {
			o.msg.Properties = msg.Props.Clone()
		}
		ev.Message = &o.msg
	}
	if e.Packet != nil {
		ev.Packet = ownPacket(e.Packet, packetVersion(e))
	}
	return ev
}

// packetVersion is the protocol version a packet event was encoded in: a
// CONNECT says so itself; other packets follow their client's.
func packetVersion(e *mqtt.Event) packets.Version {
	if c, ok := e.Packet.(*packets.Connect); ok {
		return c.ProtocolVersion
	}
	if e.Client != nil {
		return packets.Version(e.Client.ProtocolVersion)
	}
	return 0
}

// ownPacket copies p by encoding it for v and decoding the result, which
// then aliases only its own buffer. A packet from a connection whose version
// is not yet known (a CONNACK refusing an unreadable CONNECT) is tried as
// MQTT 5 and as 3.1.1. It returns nil if no encoding round-trips, which a
// packet the broker itself decoded or built always does.
func ownPacket(p packets.Packet, v packets.Version) packets.Packet {
	for _, v := range [...]packets.Version{v, packets.V5, packets.V311} {
		if v == 0 {
			continue
		}
		buf, err := p.Append(nil, v)
		if err != nil {
			continue
		}
		fh, n, err := packets.DecodeFixedHeader(buf)
		if err != nil {
			continue
		}
		if q, err := packets.Decode(fh, buf[n:], v); err == nil {
			return q
		}
	}
	return nil
}

// Clone returns a copy of e that shares nothing the broker may reuse: for
// a sink that must keep a borrowed event (BorrowingEventPlugin) beyond the
// call, such as an HTTP plugin holding events until its manifest says
// which it wants.
func (e *Event) Clone() *Event {
	cp := *e
	cp.ID = strings.Clone(e.ID)
	cp.Topic = strings.Clone(e.Topic)
	cp.Reason = strings.Clone(e.Reason)
	cp.TargetID = strings.Clone(e.TargetID)
	if e.Client != nil {
		ci := *e.Client
		cp.Client = &ci
	}
	if m := e.Message; m != nil {
		mc := Message{Topic: strings.Clone(m.Topic), Payload: bytes.Clone(m.Payload), QoS: m.QoS, Retain: m.Retain}
		if m.Properties != nil {
			mc.Properties = m.Properties.Clone()
		}
		cp.Message = &mc
	}
	if e.Packet != nil {
		v := packets.Version(0)
		if c, ok := e.Packet.(*packets.Connect); ok {
			v = c.ProtocolVersion
		} else if e.Client != nil {
			v = packets.Version(e.Client.ProtocolVersion)
		}
		cp.Packet = ownPacket(e.Packet, v)
	}
	return &cp
}
