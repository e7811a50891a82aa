package packets

import "strings"

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS granted to this subscription
	NoLocal           bool // v5: do not send the subscriber's own messages back
	RetainAsPublished bool // v5: keep the RETAIN flag when forwarding
	RetainHandling    byte // v5: 0 send retained, 1 only for new subscriptions, 2 never
}

// Subscription option bits (3.8.3.1).
const (
	subQoS            = 0x03
	subNoLocal        = 0x04
	subRetainAsPub    = 0x08
	subRetainHandling = 0x30
	subReservedV5     = 0xC0
	subReservedV311   = 0xFC
)

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
	Props         Properties // v5 only
}

// Type returns SUBSCRIBE.
func (p *Subscribe) Type() Type { return SUBSCRIBE }

// Decode parses a SUBSCRIBE body, reusing the capacity of p.Subscriptions.
// Filters are only checked to be UTF-8: their syntax is answered per filter
// in SUBACK (0x80 / 0x8F), which is the broker's job.
func (p *Subscribe) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, SUBSCRIBE); err != nil {
		return err
	}
	p.Subscriptions = p.Subscriptions[:0]
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16("SUBSCRIBE packet identifier")
	if r.err == nil && p.PacketID == 0 {
		// [MQTT-2.3.1-1] / [MQTT5-2.2.1-3] SUBSCRIBE needs a non-zero id.
		return malformed("SUBSCRIBE packet identifier is 0")
	}
	if v == V5 {
		p.Props.decode(&r, &subscribeProps)
	}
	if r.err == nil && r.left() == 0 {
		// [MQTT-3.8.3-3] / [MQTT5-3.8.3-2] at least one filter.
		return protocolErr("SUBSCRIBE has no topic filter")
	}
	for r.err == nil && r.left() > 0 {
		// [MQTT-3.8.3-1] filters are UTF-8 strings.
		s := Subscription{Filter: r.str("SUBSCRIBE topic filter")}
		opts := r.u8("SUBSCRIBE options")
		if r.err != nil {
			break
		}
		s.QoS = opts & subQoS
		if v == V5 {
			if opts&subReservedV5 != 0 {
				// [MQTT5-3.8.3-5] reserved option bits must be 0.
				return malformed("SUBSCRIBE options have reserved bits set")
			}
			s.NoLocal = opts&subNoLocal != 0
			s.RetainAsPublished = opts&subRetainAsPub != 0
			s.RetainHandling = opts & subRetainHandling >> 4
			if s.QoS == 3 {
				// 5.0 §3.8.3.1: a maximum QoS of 3 is a protocol error.
				return protocolErr("SUBSCRIBE QoS is 3")
			}
			if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
				// [MQTT5-3.8.3-4] No Local on a shared subscription is a protocol error.
				return protocolErr("SUBSCRIBE sets No Local on a shared subscription")
			}
			if s.RetainHandling == 3 {
				// 5.0 §3.8.3.1: Retain Handling 3 is a protocol error.
				return protocolErr("SUBSCRIBE retain handling is 3")
			}
		} else if opts&subReservedV311 != 0 || s.QoS == 3 {
			// [MQTT-3.8.3-4] reserved bits set or QoS 3 is malformed.
			return malformed("SUBSCRIBE options have reserved bits set or QoS 3")
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	return r.done("SUBSCRIBE")
}

// Append encodes the SUBSCRIBE. v5-only options are dropped for 3.1.1.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	if p.PacketID == 0 {
		return dst, malformed("SUBSCRIBE packet identifier is 0")
	}
	if len(p.Subscriptions) == 0 {
		return dst, protocolErr("SUBSCRIBE has no topic filter")
	}
	rem := 2
	var props encoding
	if v == V5 {
		var err error
		if props, err = p.Props.measure(&subscribeProps); err != nil {
			return dst, err
		}
		rem += props.wireLen()
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if len(s.Filter) > maxString {
			return dst, malformed("SUBSCRIBE filter longer than 65535 bytes")
		}
		if s.QoS > 2 || s.RetainHandling > 2 {
			return dst, malformed("SUBSCRIBE QoS or retain handling is 3")
		}
		rem += 3 + len(s.Filter)
	}
	dst, err := header(dst, SUBSCRIBE, 0x2, rem) // [MQTT-3.8.1-1] flags 0010
	if err != nil {
		return dst, err
	}
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendProps(dst, props.mask, props.n)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		opts := s.QoS
		if v == V5 {
			if s.NoLocal {
				opts |= subNoLocal
			}
			if s.RetainAsPublished {
				opts |= subRetainAsPub
			}
			opts |= s.RetainHandling << 4
		}
		dst = append(appendString(dst, s.Filter), opts)
	}
	return dst, nil
}

// Suback is the SUBACK packet: one reason code per filter of the SUBSCRIBE.
type Suback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode // 3.1.1: granted QoS 0-2 or SubackFailure
	Props       Properties   // v5 only
}

// Type returns SUBACK.
func (p *Suback) Type() Type { return SUBACK }

// Decode parses a SUBACK body, reusing the capacity of p.ReasonCodes.
func (p *Suback) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, SUBACK); err != nil {
		return err
	}
	p.ReasonCodes = p.ReasonCodes[:0]
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16("SUBACK packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return malformed("SUBACK packet identifier is 0") // [MQTT-2.3.1-1]
	}
	codes := &subackCodesV3
	if v == V5 {
		p.Props.decode(&r, &ackProps)
		codes = &subackCodes
	}
	for _, c := range r.rest() {
		if !codes.has(ReasonCode(c)) {
			// [MQTT-3.9.3-2] other return codes are reserved.
			return protocolErr("SUBACK reason code " + ReasonCode(c).String() + " is not valid")
		}
		p.ReasonCodes = append(p.ReasonCodes, ReasonCode(c))
	}
	return r.done("SUBACK")
}

// Append encodes the SUBACK.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, v, SUBACK, p.PacketID, p.ReasonCodes, &p.Props)
}

// appendCodes encodes SUBACK or UNSUBACK: packet id, v5 properties, codes.
func appendCodes(dst []byte, v Version, t Type, pid uint16, codes []ReasonCode, pp *Properties) ([]byte, error) {
	if pid == 0 {
		return dst, malformed(t.String() + " packet identifier is 0")
	}
	rem := 2 + len(codes)
	var props encoding
	if v == V5 {
		var err error
		if props, err = pp.measure(&ackProps); err != nil {
			return dst, err
		}
		rem += props.wireLen()
	}
	dst, err := header(dst, t, 0, rem)
	if err != nil {
		return dst, err
	}
	dst = appendU16(dst, pid)
	if v == V5 {
		dst = pp.appendProps(dst, props.mask, props.n)
	}
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst, nil
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Filters  []string
	Props    Properties // v5 only
}

// Type returns UNSUBSCRIBE.
func (p *Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Decode parses an UNSUBSCRIBE body, reusing the capacity of p.Filters.
// As for SUBSCRIBE, filter syntax is left to the broker.
func (p *Unsubscribe) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, UNSUBSCRIBE); err != nil {
		return err
	}
	p.Filters = p.Filters[:0]
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16("UNSUBSCRIBE packet identifier")
	if r.err == nil && p.PacketID == 0 {
		// [MQTT-2.3.1-1] / [MQTT5-2.2.1-3] UNSUBSCRIBE needs a non-zero id.
		return malformed("UNSUBSCRIBE packet identifier is 0")
	}
	if v == V5 {
		p.Props.decode(&r, &unsubscribeProps)
	}
	if r.err == nil && r.left() == 0 {
		// [MQTT-3.10.3-2] at least one filter.
		return protocolErr("UNSUBSCRIBE has no topic filter")
	}
	for r.err == nil && r.left() > 0 {
		f := r.str("UNSUBSCRIBE topic filter") // [MQTT-3.10.3-1]
		if r.err == nil {
			p.Filters = append(p.Filters, f)
		}
	}
	return r.done("UNSUBSCRIBE")
}

// Append encodes the UNSUBSCRIBE.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	if p.PacketID == 0 {
		return dst, malformed("UNSUBSCRIBE packet identifier is 0")
	}
	if len(p.Filters) == 0 {
		return dst, protocolErr("UNSUBSCRIBE has no topic filter")
	}
	rem := 2
	var props encoding
	if v == V5 {
		var err error
		if props, err = p.Props.measure(&unsubscribeProps); err != nil {
			return dst, err
		}
		rem += props.wireLen()
	}
	for _, f := range p.Filters {
		if len(f) > maxString {
			return dst, malformed("UNSUBSCRIBE filter longer than 65535 bytes")
		}
		rem += 2 + len(f)
	}
	dst, err := header(dst, UNSUBSCRIBE, 0x2, rem) // [MQTT-3.10.1-1] flags 0010
	if err != nil {
		return dst, err
	}
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendProps(dst, props.mask, props.n)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// Unsuback is the UNSUBACK packet.
type Unsuback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode // v5 only: one per filter of the UNSUBSCRIBE
	Props       Properties   // v5 only
}

// Type returns UNSUBACK.
func (p *Unsuback) Type() Type { return UNSUBACK }

// Decode parses an UNSUBACK body, reusing the capacity of p.ReasonCodes.
func (p *Unsuback) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, UNSUBACK); err != nil {
		return err
	}
	p.ReasonCodes = p.ReasonCodes[:0]
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16("UNSUBACK packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return malformed("UNSUBACK packet identifier is 0") // [MQTT-2.3.1-1]
	}
	if v == V5 {
		p.Props.decode(&r, &ackProps)
		for _, c := range r.rest() {
			if !unsubackCodes.has(ReasonCode(c)) {
				return protocolErr("UNSUBACK reason code " + ReasonCode(c).String() + " is not valid")
			}
			p.ReasonCodes = append(p.ReasonCodes, ReasonCode(c))
		}
	}
	return r.done("UNSUBACK")
}

// Append encodes the UNSUBACK; 3.1.1 carries only the packet identifier.
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return appendCodes(dst, v, UNSUBACK, p.PacketID, nil, &p.Props)
	}
	return appendCodes(dst, v, UNSUBACK, p.PacketID, p.ReasonCodes, &p.Props)
}
