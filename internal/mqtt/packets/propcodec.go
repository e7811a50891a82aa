package packets

import (
	"math/bits"
	"strconv"
)

// This file holds the wire encoding of properties; properties.go the type.

// propKind is the wire type of a property value.
type propKind uint8

const (
	wireNone propKind = iota
	wireByte
	wireU16
	wireU32
	wireVarInt
	wireString
	wireBinary
	wirePair
)

var propKinds = [64]propKind{
	PropPayloadFormat:        wireByte,
	PropMessageExpiry:        wireU32,
	PropContentType:          wireString,
	PropResponseTopic:        wireString,
	PropCorrelationData:      wireBinary,
	PropSubscriptionID:       wireVarInt,
	PropSessionExpiry:        wireU32,
	PropAssignedClientID:     wireString,
	PropServerKeepAlive:      wireU16,
	PropAuthMethod:           wireString,
	PropAuthData:             wireBinary,
	PropRequestProblemInfo:   wireByte,
	PropWillDelay:            wireU32,
	PropRequestResponseInfo:  wireByte,
	PropResponseInfo:         wireString,
	PropServerReference:      wireString,
	PropReasonString:         wireString,
	PropReceiveMaximum:       wireU16,
	PropTopicAliasMaximum:    wireU16,
	PropTopicAlias:           wireU16,
	PropMaximumQoS:           wireByte,
	PropRetainAvailable:      wireByte,
	PropUser:                 wirePair,
	PropMaximumPacketSize:    wireU32,
	PropWildcardSubAvailable: wireByte,
	PropSubIDAvailable:       wireByte,
	PropSharedSubAvailable:   wireByte,
}

// num returns the value of a numeric property.
func (p *Properties) num(id PropID) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// setNum stores the value of a numeric property.
func (p *Properties) setNum(id PropID, v uint32) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case PropMessageExpiry:
		p.MessageExpiry = v
	case PropSessionExpiry:
		p.SessionExpiry = v
	case PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case PropWillDelay:
		p.WillDelay = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case PropTopicAlias:
		p.TopicAlias = uint16(v)
	case PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case PropSubIDAvailable:
		p.SubIDAvailable = byte(v)
	case PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
}

// strPtr returns the field of a string property.
func (p *Properties) strPtr(id PropID) *string {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// binPtr returns the field of a binary property.
func (p *Properties) binPtr(id PropID) *[]byte {
	switch id {
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAuthData:
		return &p.AuthData
	}
	return nil
}

// propRules says which properties a packet (or a will) may carry.
type propRules struct {
	name       string // for error messages
	allowed    uint64 // bit 1<<id per allowed property
	multiSubID bool   // PUBLISH may carry several Subscription Identifiers
}

func allow(ids ...PropID) uint64 {
	var m uint64
	for _, id := range ids {
		m |= 1 << id
	}
	return m
}

// Which packet may carry which property: the table in spec 2.2.2.2. User
// Property is allowed everywhere.
var (
	connectProps = propRules{name: "CONNECT", allowed: allow(PropSessionExpiry, PropAuthMethod,
		PropAuthData, PropRequestProblemInfo, PropRequestResponseInfo, PropReceiveMaximum,
		PropTopicAliasMaximum, PropUser, PropMaximumPacketSize)}
	willProps = propRules{name: "will", allowed: allow(PropPayloadFormat, PropMessageExpiry,
		PropContentType, PropResponseTopic, PropCorrelationData, PropWillDelay, PropUser)}
	connackProps = propRules{name: "CONNACK", allowed: allow(PropSessionExpiry, PropAssignedClientID,
		PropServerKeepAlive, PropAuthMethod, PropAuthData, PropResponseInfo, PropServerReference,
		PropReasonString, PropReceiveMaximum, PropTopicAliasMaximum, PropMaximumQoS,
		PropRetainAvailable, PropUser, PropMaximumPacketSize, PropWildcardSubAvailable,
		PropSubIDAvailable, PropSharedSubAvailable)}
	publishProps = propRules{name: "PUBLISH", multiSubID: true, allowed: allow(PropPayloadFormat,
		PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
		PropSubscriptionID, PropTopicAlias, PropUser)}
	ackProps         = propRules{name: "acknowledgement", allowed: allow(PropReasonString, PropUser)}
	subscribeProps   = propRules{name: "SUBSCRIBE", allowed: allow(PropSubscriptionID, PropUser)}
	unsubscribeProps = propRules{name: "UNSUBSCRIBE", allowed: allow(PropUser)}
	disconnectProps  = propRules{name: "DISCONNECT", allowed: allow(PropSessionExpiry,
		PropServerReference, PropReasonString, PropUser)}
	authProps = propRules{name: "AUTH", allowed: allow(PropAuthMethod, PropAuthData,
		PropReasonString, PropUser)}
)

// decode resets p and reads a property block (length, then properties) from r.
func (p *Properties) decode(r *reader, rules *propRules) {
	p.Reset()
	n := r.varint("property length")
	block := r.take(n, "properties")
	if r.err != nil {
		return
	}
	pr := reader{b: block}
	for pr.err == nil && pr.left() > 0 {
		id := PropID(pr.varint("property identifier"))
		if pr.err != nil {
			break
		}
		if id >= 64 || propKinds[id] == wireNone {
			// Spec 2.2.2.2: an identifier that is not defined is malformed.
			pr.fail(malformed("unknown property identifier 0x" + strconv.FormatUint(uint64(id), 16)))
			break
		}
		if rules.allowed&(1<<id) == 0 {
			// Spec 2.2.2.2: an identifier not valid for the packet is malformed.
			pr.fail(malformed("property 0x" + strconv.FormatUint(uint64(id), 16) + " is not allowed in " + rules.name))
			break
		}
		if p.set&(1<<id) != 0 && id != PropUser && !(id == PropSubscriptionID && rules.multiSubID) {
			// Every property section says including it more than once is a
			// protocol error, except User Property and (PUBLISH only)
			// Subscription Identifier.
			pr.fail(protocolErr("property 0x" + strconv.FormatUint(uint64(id), 16) + " appears more than once in " + rules.name))
			break
		}
		p.set |= 1 << id
		p.decodeValue(&pr, id)
	}
	if pr.err != nil {
		r.fail(pr.err)
		return
	}
	if p.set&(1<<PropAuthData) != 0 && p.set&(1<<PropAuthMethod) == 0 {
		// 3.1.2.11.10: Authentication Data without Authentication Method is
		// a protocol error.
		r.fail(protocolErr("authentication data without authentication method"))
	}
}

// decodeValue reads the value of property id and checks its range.
func (p *Properties) decodeValue(r *reader, id PropID) {
	switch propKinds[id] {
	case wireByte:
		v := r.u8("property value")
		if r.err == nil && v > 1 {
			// Every single-byte property is 0 or 1 (Maximum QoS included,
			// 3.2.2.3.4); other values are protocol errors.
			r.fail(protocolErr("property 0x" + strconv.FormatUint(uint64(id), 16) + " must be 0 or 1"))
		}
		p.setNum(id, uint32(v))
	case wireU16:
		v := r.u16("property value")
		if r.err == nil && v == 0 {
			switch id {
			case PropReceiveMaximum:
				// 3.1.2.11.3 / 3.2.2.3.3: a Receive Maximum of 0 is a protocol error.
				r.fail(protocolErr("receive maximum is 0"))
			case PropTopicAlias:
				// [MQTT5-3.3.2-8] a Topic Alias of 0 is not permitted; the
				// receiver says 0x94 Topic Alias invalid.
				e := protocolErr("topic alias is 0")
				e.Code = TopicAliasInvalid
				r.fail(e)
			}
		}
		p.setNum(id, uint32(v))
	case wireU32:
		v := r.u32("property value")
		if r.err == nil && v == 0 && id == PropMaximumPacketSize {
			// 3.1.2.11.4 / 3.2.2.3.6: a Maximum Packet Size of 0 is a protocol error.
			r.fail(protocolErr("maximum packet size is 0"))
		}
		p.setNum(id, v)
	case wireVarInt: // Subscription Identifier, the only one
		v := r.varint("subscription identifier")
		if r.err == nil && v == 0 {
			// 3.8.2.1.2: a Subscription Identifier of 0 is a protocol error.
			r.fail(protocolErr("subscription identifier is 0"))
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
	case wireString:
		s := r.str("property string")
		if r.err == nil && id == PropResponseTopic && !ValidTopicName(s) {
			// [MQTT5-3.3.2-14] the Response Topic must not contain wildcards.
			r.fail(protocolErr("response topic is not a valid topic name"))
		}
		*p.strPtr(id) = s
	case wireBinary:
		b := r.binary("property data")
		if b == nil {
			// Present but empty: keep it distinct from absent for callers
			// that test the field rather than Has.
			b = r.b[r.off:r.off:r.off]
		}
		*p.binPtr(id) = b
	case wirePair:
		k := r.str("user property name")
		v := r.str("user property value")
		p.User = append(p.User, UserProperty{Key: k, Value: v})
	}
}

// Size returns the encoded length of the present properties, without the
// length prefix: what they cost on the wire and, roughly, in memory. A nil
// p has size 0; a value too long to encode counts at its full length.
func (p *Properties) Size() int {
	if p == nil {
		return 0
	}
	n := 0
	m := p.present()
	if m&(1<<PropUser) != 0 {
		for _, u := range p.User {
			n += 5 + len(u.Key) + len(u.Value)
		}
		m &^= 1 << PropUser
	}
	if s := p.size(m); s > 0 {
		n += s
	}
	return n
}

// size returns the encoded length of the properties in mask m (without the
// length prefix), or -1 if a value cannot be encoded.
func (p *Properties) size(m uint64) int {
	n := 0
	for b := m; b != 0; b &= b - 1 {
		id := PropID(bits.TrailingZeros64(b))
		switch propKinds[id] {
		case wireByte:
			n += 2
		case wireU16:
			n += 3
		case wireU32:
			n += 5
		case wireVarInt:
			for _, v := range p.SubscriptionIDs {
				if v == 0 || v > MaxVarInt {
					return -1
				}
				n += 1 + VarIntLen(int(v))
			}
		case wireString:
			s := *p.strPtr(id)
			if len(s) > maxString {
				return -1
			}
			n += 3 + len(s)
		case wireBinary:
			b := *p.binPtr(id)
			if len(b) > maxString {
				return -1
			}
			n += 3 + len(b)
		case wirePair:
			for _, u := range p.User {
				if len(u.Key) > maxString || len(u.Value) > maxString {
					return -1
				}
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// appendProps appends the properties in mask m, whose encoded size is n,
// with their length prefix.
func (p *Properties) appendProps(dst []byte, m uint64, n int) []byte {
	dst = AppendVarInt(dst, n)
	for b := m; b != 0; b &= b - 1 {
		id := PropID(bits.TrailingZeros64(b))
		switch propKinds[id] {
		case wireByte:
			dst = append(dst, byte(id), byte(p.num(id)))
		case wireU16:
			dst = appendU16(append(dst, byte(id)), uint16(p.num(id)))
		case wireU32:
			dst = appendU32(append(dst, byte(id)), p.num(id))
		case wireVarInt:
			for _, v := range p.SubscriptionIDs {
				dst = AppendVarInt(append(dst, byte(id)), int(v))
			}
		case wireString:
			dst = appendString(append(dst, byte(id)), *p.strPtr(id))
		case wireBinary:
			dst = appendBinary(append(dst, byte(id)), *p.binPtr(id))
		case wirePair:
			for _, u := range p.User {
				dst = appendString(append(dst, byte(id)), u.Key)
				dst = appendString(dst, u.Value)
			}
		}
	}
	return dst
}

// encoding is a property block measured for encoding: the mask of present
// properties and the block's length without its prefix.
type encoding struct {
	mask uint64
	n    int
}

// wireLen is the length of the block including its length prefix.
func (e encoding) wireLen() int { return VarIntLen(e.n) + e.n }

// measure prepares p for encoding in a packet governed by rules.
func (p *Properties) measure(rules *propRules) (encoding, error) {
	m := p.present()
	if bad := m &^ rules.allowed; bad != 0 {
		id := bits.TrailingZeros64(bad)
		return encoding{}, protocolErr("property 0x" + strconv.FormatUint(uint64(id), 16) + " is not allowed in " + rules.name)
	}
	if !rules.multiSubID && len(p.SubscriptionIDs) > 1 {
		return encoding{}, protocolErr(rules.name + " may carry only one subscription identifier")
	}
	n := p.size(m)
	if n < 0 {
		return encoding{}, malformed(rules.name + " has a property value that cannot be encoded")
	}
	if n > MaxVarInt {
		return encoding{}, tooLarge(rules.name + " properties are too long")
	}
	return encoding{mask: m, n: n}, nil
}
