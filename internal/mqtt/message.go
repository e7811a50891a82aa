package mqtt

import (
	"time"
	"unsafe"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Message is an application message held by the broker: retained, queued for
// a session, inflight, or a will. It is immutable once created and shared by
// every delivery of it, so holding one costs a pointer, not a copy.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	From    string // publishing client id; "" when the broker itself published
	Created time.Time
	Props   *packets.Properties // MQTT 5 properties to forward; nil for 3.1.1 publishers
}

// routed is a message on its way through route. It may alias a connection's
// read buffer (topic and payload straight from the decoder); msg is the
// owned copy, made only when some delivery has to outlive the call.
type routed struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	from    string
	props   *packets.Properties
	msg     *Message
	// persist: deliveries to persistent sessions wait for the store (see
	// deferToStore); pb is what routing it writes there, nil for nothing.
	persist bool
	pb      *pubBatch
	// hold is the publishing connection's flow control when a client's
	// QoS 1/2 PUBLISH is routed: a full queue of an online subscriber
	// then takes the message past its bound and holds the publisher's
	// acknowledgement (queueOnline). nil for the broker's own messages.
	hold *flowControl
	// at is when the message's bytes arrived (zero: now), its Created.
	at time.Time
	// by is the connection whose reader goroutine routes the message, nil
	// for the broker's own: it writes the deliveries out itself at the end
	// of its read batch (wakeByLocked).
	by *client
}

func routedFrom(m *Message) routed {
	return routed{topic: m.Topic, payload: m.Payload, qos: m.QoS, retain: m.Retain, from: m.From, props: m.Props, msg: m}
}

// message returns the owned copy, cloning the aliased fields the first time.
func (r *routed) message() *Message {
	if r.msg == nil {
		// The Message, topic and payload share one allocation (newMessage):
		// a QoS 1/2 publish costs one however many subscribers it reaches.
		created := r.at
		if created.IsZero() {
			created = time.Now()
		}
		m, buf := newMessage(len(r.topic) + len(r.payload))
		n := copy(buf, r.topic)
		copy(buf[n:], r.payload)
		*m = Message{
			Topic:   unsafe.String(unsafe.SliceData(buf), n),
			Payload: buf[n:len(buf):len(buf)],
			QoS:     r.qos,
			Retain:  r.retain,
			From:    r.from,
			Created: created,
		}
		r.msg = m
		if r.props != nil {
			r.msg.Props = r.props.Clone()
			r.msg.Props.Clear(packets.PropTopicAlias)
		}
	}
	return r.msg
}

// created is when the message entered the broker, for Message Expiry; zero
// for a message being routed as it arrives.
func (r *routed) created() time.Time {
	if r.msg != nil {
		return r.msg.Created
	}
	return time.Time{}
}
