package cluster

import (
	"encoding/binary"
	"errors"
	"time"
	"unsafe"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A message between nodes (and a retained message in its bucket) is an
// envelope: a version byte, the publishing client id, the time the message
// entered the cluster, then the message itself as an MQTT 5 PUBLISH packet,
// which carries topic, QoS, RETAIN, payload and properties with the codec
// the broker already trusts.

const envelopeV1 = 1

var errEnvelope = errors.New("cluster: malformed message envelope")

// appendEnvelope encodes a message into dst.
func appendEnvelope(dst []byte, topic string, payload []byte, qos byte, retain bool, from string, created time.Time, props *packets.Properties) ([]byte, error) {
	dst = append(dst, envelopeV1)
	dst = binary.AppendUvarint(dst, uint64(len(from)))
	dst = append(dst, from...)
	dst = binary.AppendVarint(dst, created.UnixNano())
	if props != nil && props.Has(packets.PropTopicAlias) {
		// An alias is the publisher's connection's, never the message's.
		props = props.Clone()
		props.Clear(packets.PropTopicAlias)
	}
	var pid uint16
	if qos > 0 {
		pid = 1
	}
	return packets.AppendPublish(dst, packets.V5, topic, payload, qos, pid, retain, false, props)
}

// decodeEnvelope decodes a message. The Message owns its memory: data may
// be reused by the caller afterwards.
func decodeEnvelope(data []byte) (*mqtt.Message, error) { return decodeEnvelopeIn(data, true) }

// decodeOwned decodes a message that keeps data: for a NATS message, whose
// Data nats.go allocates for each message delivered (a second copy per
// message crossing nodes is what this saves).
func decodeOwned(data []byte) (*mqtt.Message, error) { return decodeEnvelopeIn(data, false) }

func decodeEnvelopeIn(data []byte, copyBody bool) (*mqtt.Message, error) {
	m := new(mqtt.Message)
	if err := decodeInto(m, data, copyBody); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeInto decodes a message into m.
func decodeInto(m *mqtt.Message, data []byte, copyBody bool) error {
	if len(data) < 1 || data[0] != envelopeV1 {
		return errEnvelope
	}
	data = data[1:]
	n, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < n {
		return errEnvelope
	}
	var from string
	if copyBody {
		from = string(data[k : k+int(n)])
	} else if n > 0 {
		from = unsafe.String(&data[k], int(n)) // data is kept, as the body is
	}
	data = data[k+int(n):]
	nanos, k := binary.Varint(data)
	if k <= 0 {
		return errEnvelope
	}
	data = data[k:]
	fh, hn, err := packets.DecodeFixedHeader(data)
	if err != nil || fh.Type != packets.PUBLISH || hn+fh.Remaining != len(data) {
		return errEnvelope
	}
	body := data[hn:] // the Publish aliases it
	if copyBody {
		body = append([]byte(nil), body...)
	}
	var p packets.Publish
	if err := p.Decode(fh, body, packets.V5); err != nil {
		return errEnvelope
	}
	*m = mqtt.Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from,
		Created: time.Unix(0, nanos)}
	if forwarded(&p.Props) {
		m.Props = p.Props.Clone()
	}
	return nil
}

// forwarded reports whether a decoded PUBLISH carries properties at all.
func forwarded(p *packets.Properties) bool {
	return p.Present() != 0 || len(p.User) > 0
}

// Messages between nodes travel in batches: a NATS message on a topic's
// subject holds every message its publisher's node had for that topic
// when it sent (many under load, where one NATS message each cost more
// than the messages themselves: a publish, the server's routing, the
// receiver's parse and hand-off to the subscription's goroutine, and an
// answer to confirm it). A batch is the byte envelopeBatch, then per
// message a 4-byte big-endian length and its envelope. The retained bucket
// keeps single envelopes.
const envelopeBatch = 2

// batchLenSize is the length prefix of each envelope in a batch.
const batchLenSize = 4

// eachEnvelope calls f with every message of a batch (or of a single
// envelope) in order. The messages keep data (decodeOwned). It stops at
// the first malformed one and returns its error.
func eachEnvelope(data []byte, f func(*mqtt.Message)) error {
	if len(data) == 0 || data[0] != envelopeBatch {
		m, err := decodeOwned(data)
		if err != nil {
			return err
		}
		f(m)
		return nil
	}
	data = data[1:]
	// The batch's messages are allocated together, a slab at a time: they
	// keep data alive anyway (their payloads alias it), and they go the
	// same way, to the subscribers of one topic.
	var slab []mqtt.Message
	for len(data) > 0 {
		if len(data) < batchLenSize {
			return errEnvelope
		}
		n := binary.BigEndian.Uint32(data)
		data = data[batchLenSize:]
		if uint64(n) > uint64(len(data)) {
			return errEnvelope
		}
		if len(slab) == 0 {
			slab = make([]mqtt.Message, slabSize(data[n:]))
		}
		m := &slab[0]
		slab = slab[1:]
		if err := decodeInto(m, data[:n:n], false); err != nil {
			return err
		}
		f(m)
		data = data[n:]
	}
	return nil
}

// maxSlab bounds the messages allocated together.
const maxSlab = 256

// slabSize is how many messages to allocate together for the one about to
// be decoded and those in rest, the batch after it: as many as rest holds,
// counted from its length prefixes, up to maxSlab.
func slabSize(rest []byte) int {
	k := 1
	for k < maxSlab && len(rest) >= batchLenSize {
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-batchLenSize) {
			break
		}
		rest = rest[batchLenSize+int(n):]
		k++
	}
	return k
}
