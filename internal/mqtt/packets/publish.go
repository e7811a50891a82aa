package packets

// Publish is the PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string // may be empty in v5 when Props carries a Topic Alias
	PacketID uint16 // only for QoS 1 and 2
	Payload  []byte // nil when empty
	Props    Properties
}

// Type returns PUBLISH.
func (p *Publish) Type() Type { return PUBLISH }

// PUBLISH fixed header flags (3.3.1).
const (
	pubRetain = 0x01
	pubQoS    = 0x06
	pubDup    = 0x08
)

// Decode parses a PUBLISH body into p, reusing p's slices. It does not
// allocate once p's property slices have grown to fit.
func (p *Publish) Decode(fh FixedHeader, body []byte, v Version) error {
	return p.DecodeSeen(fh, body, v, nil)
}

// DecodeSeen is Decode for a connection that publishes to the same topic
// again and again: *seen is the last topic name it validated (a copy the
// caller keeps between packets; nil: none), and a topic with exactly those
// bytes is not scanned again. A topic that differs in any byte is scanned
// as Decode does, and becomes *seen once it passes (the buffer is reused,
// so a client changing topic on every publish allocates nothing once it
// has held its longest). p.Topic aliases body either way, as with Decode.
// seen may be nil. An empty topic (MQTT 5, Topic Alias only) leaves *seen
// alone: it is not a topic name.
func (p *Publish) DecodeSeen(fh FixedHeader, body []byte, v Version, seen *[]byte) error {
	if err := begin(fh, body, PUBLISH); err != nil {
		return err
	}
	p.Dup = fh.Flags&pubDup != 0
	p.QoS = fh.Flags & pubQoS >> 1
	p.Retain = fh.Flags&pubRetain != 0
	p.PacketID = 0
	p.Props.Reset()
	switch {
	case p.QoS == 3:
		// [MQTT-3.3.1-4] QoS 3 is malformed.
		return malformed("PUBLISH QoS is 3")
	case p.Dup && p.QoS == 0:
		// [MQTT-3.3.1-2] DUP must be 0 for QoS 0 (in 3.1.1 and v5 alike).
		return malformed("PUBLISH has DUP set with QoS 0")
	}

	r := reader{b: body}
	p.Topic = r.rawString("PUBLISH topic")
	if p.QoS > 0 {
		p.PacketID = r.u16("PUBLISH packet identifier")
		if r.err == nil && p.PacketID == 0 {
			// [MQTT-2.3.1-1] / [MQTT5-2.2.1-3] QoS > 0 needs a non-zero id.
			return malformed("PUBLISH packet identifier is 0")
		}
	}
	if v == V5 {
		p.Props.decode(&r, &publishProps)
	}
	if r.err != nil {
		return r.err
	}
	p.Payload = r.rest()

	if p.Topic == "" {
		if v != V5 || !p.Props.Has(PropTopicAlias) {
			// [MQTT-4.7.3-1] a topic name has at least one character; v5
			// allows an empty one only with a Topic Alias (3.3.2.3.4).
			return malformed("PUBLISH topic is empty")
		}
		return nil
	}
	if seen != nil && len(*seen) > 0 && string(*seen) == p.Topic {
		return nil // validated when it was last seen; the bytes are the same
	}
	ok, wild := scanString(p.Topic)
	if !ok {
		// [MQTT-3.3.2-1] the topic is a UTF-8 string ([MQTT-1.5.3-1], [MQTT-1.5.3-2]).
		return malformed("PUBLISH topic is not valid UTF-8 or contains U+0000")
	}
	if wild {
		// [MQTT-3.3.2-2] a topic name has no wildcard characters.
		return malformed("PUBLISH topic contains a wildcard")
	}
	if seen != nil {
		*seen = append((*seen)[:0], p.Topic...)
	}
	return nil
}

// Append encodes the PUBLISH. It does not re-validate the topic, which the
// broker checked when the message arrived; it allocates only when dst
// lacks capacity.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	return AppendPublish(dst, v, p.Topic, p.Payload, p.QoS, p.PacketID, p.Retain, p.Dup, &p.Props)
}

// AppendPublish appends a PUBLISH built from its parts: what Publish.Append
// does, for a sender that would rather not fill a Publish, whose inline
// Properties make it several hundred bytes to zero per message. props may be
// nil (no properties); it is ignored below V5.
func AppendPublish(dst []byte, v Version, topic string, payload []byte, qos byte, pid uint16, retain, dup bool, props *Properties) ([]byte, error) {
	switch {
	case qos > 2:
		return dst, malformed("PUBLISH QoS is 3") // [MQTT-3.3.1-4]
	case qos > 0 && pid == 0:
		return dst, malformed("PUBLISH packet identifier is 0") // [MQTT-2.3.1-1]
	case qos == 0 && dup:
		return dst, malformed("PUBLISH has DUP set with QoS 0") // [MQTT-3.3.1-2]
	case len(topic) > maxString:
		return dst, malformed("PUBLISH topic longer than 65535 bytes")
	}
	rem := 2 + len(topic) + len(payload)
	if qos > 0 {
		rem += 2
	}
	var enc encoding
	if v == V5 {
		if props != nil {
			var err error
			if enc, err = props.measure(&publishProps); err != nil {
				return dst, err
			}
		}
		rem += enc.wireLen()
	}
	if topic == "" && (v != V5 || enc.mask&(1<<PropTopicAlias) == 0) {
		return dst, malformed("PUBLISH topic is empty") // [MQTT-4.7.3-1]
	}
	flags := qos << 1
	if dup {
		flags |= pubDup
	}
	if retain {
		flags |= pubRetain
	}
	dst, err := header(dst, PUBLISH, flags, rem)
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = appendU16(dst, pid)
	}
	if v == V5 {
		if props != nil {
			dst = props.appendProps(dst, enc.mask, enc.n)
		} else {
			dst = append(dst, 0) // property length 0
		}
	}
	return append(dst, payload...), nil
}

// ack is the shared body of PUBACK, PUBREC, PUBREL and PUBCOMP.
type ack struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// decodeAck parses the body of one of the four acknowledgements. In v5 the
// reason code and properties may be left out when they are 0x00 and empty
// (3.4.2.1): all three lengths decode.
func decodeAck(a *ack, fh FixedHeader, body []byte, v Version, t Type, codes *codeSet) error {
	if err := begin(fh, body, t); err != nil {
		return err
	}
	err := a.decode(body, v, codes)
	if e, ok := err.(*Error); ok {
		// The shared code reads with generic names; say which packet it was.
		e.Reason = t.String() + " " + e.Reason
	}
	return err
}

func (a *ack) decode(body []byte, v Version, codes *codeSet) error {
	a.ReasonCode = Success
	a.Props.Reset()
	r := reader{b: body}
	a.PacketID = r.u16("packet identifier")
	if r.err == nil && a.PacketID == 0 {
		// [MQTT-2.3.1-1] / [MQTT5-2.2.1-3] packet identifiers are non-zero.
		return malformed("packet identifier is 0")
	}
	if v == V5 && r.left() > 0 {
		a.ReasonCode = ReasonCode(r.u8("reason code"))
		if !codes.has(a.ReasonCode) {
			return protocolErr("reason code " + a.ReasonCode.String() + " is not valid")
		}
		if r.left() > 0 {
			a.Props.decode(&r, &ackProps)
		}
	}
	return r.done("body")
}

// appendAck encodes one of the four acknowledgements in its shortest form.
func appendAck(a *ack, dst []byte, v Version, t Type, flags byte) ([]byte, error) {
	if a.PacketID == 0 {
		return dst, malformed(t.String() + " packet identifier is 0")
	}
	if v != V5 {
		return append(dst, byte(t)<<4|flags, 2, byte(a.PacketID>>8), byte(a.PacketID)), nil
	}
	props, err := a.Props.measure(&ackProps)
	if err != nil {
		return dst, err
	}
	switch {
	case props.n == 0 && a.ReasonCode == Success:
		return append(dst, byte(t)<<4|flags, 2, byte(a.PacketID>>8), byte(a.PacketID)), nil
	case props.n == 0:
		return append(dst, byte(t)<<4|flags, 3, byte(a.PacketID>>8), byte(a.PacketID), byte(a.ReasonCode)), nil
	}
	dst, err = header(dst, t, flags, 3+props.wireLen())
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(a.PacketID>>8), byte(a.PacketID), byte(a.ReasonCode))
	return a.Props.appendProps(dst, props.mask, props.n), nil
}

// Puback is the PUBACK packet, the answer to a QoS 1 PUBLISH.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// Type returns PUBACK.
func (p *Puback) Type() Type { return PUBACK }

// Decode parses a PUBACK body.
func (p *Puback) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeAck((*ack)(p), fh, body, v, PUBACK, &pubackCodes)
}

// Append encodes the PUBACK in its shortest form.
func (p *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck((*ack)(p), dst, v, PUBACK, 0)
}

// Pubrec is the PUBREC packet, the first answer to a QoS 2 PUBLISH.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// Type returns PUBREC.
func (p *Pubrec) Type() Type { return PUBREC }

// Decode parses a PUBREC body.
func (p *Pubrec) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeAck((*ack)(p), fh, body, v, PUBREC, &pubackCodes)
}

// Append encodes the PUBREC in its shortest form.
func (p *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck((*ack)(p), dst, v, PUBREC, 0)
}

// Pubrel is the PUBREL packet, the answer to PUBREC.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// Type returns PUBREL.
func (p *Pubrel) Type() Type { return PUBREL }

// Decode parses a PUBREL body.
func (p *Pubrel) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeAck((*ack)(p), fh, body, v, PUBREL, &pubrelCodes)
}

// Append encodes the PUBREL in its shortest form.
func (p *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	// [MQTT-3.6.1-1] PUBREL fixed header flags are 0010.
	return appendAck((*ack)(p), dst, v, PUBREL, 0x2)
}

// Pubcomp is the PUBCOMP packet, the answer to PUBREL.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// Type returns PUBCOMP.
func (p *Pubcomp) Type() Type { return PUBCOMP }

// Decode parses a PUBCOMP body.
func (p *Pubcomp) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeAck((*ack)(p), fh, body, v, PUBCOMP, &pubrelCodes)
}

// Append encodes the PUBCOMP in its shortest form.
func (p *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck((*ack)(p), dst, v, PUBCOMP, 0)
}
