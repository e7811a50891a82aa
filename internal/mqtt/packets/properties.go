package packets

import (
	"bytes"
	"strings"
)

// PropID identifies an MQTT 5 property (spec 2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// UserProperty is one name/value pair of a User Property. A packet may carry
// several with the same name; their order is kept.
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5 properties of a packet or of a will.
//
// Presence: a property is present, and is encoded, when its field is
// non-zero (non-empty for strings, non-nil for byte slices) or when it has
// been marked with Set. Decode marks every property it reads, so a property
// received with the value 0 (say Retain Available = 0) is told apart from
// an absent one by Has. User and SubscriptionIDs are present when non-empty.
type Properties struct {
	PayloadFormat        byte     // 0x01: 1 means the payload is UTF-8
	MessageExpiry        uint32   // 0x02: seconds
	ContentType          string   // 0x03
	ResponseTopic        string   // 0x08
	CorrelationData      []byte   // 0x09
	SubscriptionIDs      []uint32 // 0x0B: one in SUBSCRIBE, several in PUBLISH
	SessionExpiry        uint32   // 0x11: seconds
	AssignedClientID     string   // 0x12
	ServerKeepAlive      uint16   // 0x13: seconds
	AuthMethod           string   // 0x15
	AuthData             []byte   // 0x16
	RequestProblemInfo   byte     // 0x17: absent means 1
	WillDelay            uint32   // 0x18: seconds
	RequestResponseInfo  byte     // 0x19
	ResponseInfo         string   // 0x1A
	ServerReference      string   // 0x1C
	ReasonString         string   // 0x1F
	ReceiveMaximum       uint16   // 0x21: absent means 65535
	TopicAliasMaximum    uint16   // 0x22
	TopicAlias           uint16   // 0x23
	MaximumQoS           byte     // 0x24: absent means 2
	RetainAvailable      byte     // 0x25: absent means 1
	User                 []UserProperty
	MaximumPacketSize    uint32 // 0x27: absent means no limit
	WildcardSubAvailable byte   // 0x28: absent means 1
	SubIDAvailable       byte   // 0x29: absent means 1
	SharedSubAvailable   byte   // 0x2A: absent means 1

	set uint64 // bit 1<<id: marked present even if zero
}

// Set marks the property id as present, so that it is encoded even when its
// field holds the zero value.
func (p *Properties) Set(id PropID) {
	if id < 64 {
		p.set |= 1 << id
	}
}

// Clear removes the property id: it zeroes the field and drops the mark.
func (p *Properties) Clear(id PropID) {
	if id >= 64 {
		return
	}
	p.set &^= 1 << id
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 0
	case PropMessageExpiry:
		p.MessageExpiry = 0
	case PropContentType:
		p.ContentType = ""
	case PropResponseTopic:
		p.ResponseTopic = ""
	case PropCorrelationData:
		p.CorrelationData = nil
	case PropSubscriptionID:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	case PropSessionExpiry:
		p.SessionExpiry = 0
	case PropAssignedClientID:
		p.AssignedClientID = ""
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0
	case PropAuthMethod:
		p.AuthMethod = ""
	case PropAuthData:
		p.AuthData = nil
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 0
	case PropWillDelay:
		p.WillDelay = 0
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 0
	case PropResponseInfo:
		p.ResponseInfo = ""
	case PropServerReference:
		p.ServerReference = ""
	case PropReasonString:
		p.ReasonString = ""
	case PropReceiveMaximum:
		p.ReceiveMaximum = 0
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 0
	case PropTopicAlias:
		p.TopicAlias = 0
	case PropMaximumQoS:
		p.MaximumQoS = 0
	case PropRetainAvailable:
		p.RetainAvailable = 0
	case PropUser:
		p.User = p.User[:0]
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 0
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 0
	case PropSubIDAvailable:
		p.SubIDAvailable = 0
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 0
	}
}

// Has reports whether property id is present (see Properties).
func (p *Properties) Has(id PropID) bool {
	return id < 64 && p.present()&(1<<id) != 0
}

// Present is the set of present properties, bit id for property id: one
// call answers what several Has calls would, each of which looks at every
// field.
func (p *Properties) Present() PropSet { return PropSet(p.present()) }

// PropSet is a set of property identifiers.
type PropSet uint64

// Has reports whether id is in s.
func (s PropSet) Has(id PropID) bool { return id < 64 && s&(1<<id) != 0 }

// Reset empties p for reuse, keeping the capacity of its slices.
func (p *Properties) Reset() {
	*p = Properties{User: p.User[:0], SubscriptionIDs: p.SubscriptionIDs[:0]}
}

// present returns the set of present properties as a bit mask.
func (p *Properties) present() uint64 {
	m := p.set
	flag := func(cond bool, id PropID) {
		if cond {
			m |= 1 << id
		}
	}
	flag(p.PayloadFormat != 0, PropPayloadFormat)
	flag(p.MessageExpiry != 0, PropMessageExpiry)
	flag(p.ContentType != "", PropContentType)
	flag(p.ResponseTopic != "", PropResponseTopic)
	flag(p.CorrelationData != nil, PropCorrelationData)
	flag(len(p.SubscriptionIDs) != 0, PropSubscriptionID)
	flag(p.SessionExpiry != 0, PropSessionExpiry)
	flag(p.AssignedClientID != "", PropAssignedClientID)
	flag(p.ServerKeepAlive != 0, PropServerKeepAlive)
	flag(p.AuthMethod != "", PropAuthMethod)
	flag(p.AuthData != nil, PropAuthData)
	flag(p.RequestProblemInfo != 0, PropRequestProblemInfo)
	flag(p.WillDelay != 0, PropWillDelay)
	flag(p.RequestResponseInfo != 0, PropRequestResponseInfo)
	flag(p.ResponseInfo != "", PropResponseInfo)
	flag(p.ServerReference != "", PropServerReference)
	flag(p.ReasonString != "", PropReasonString)
	flag(p.ReceiveMaximum != 0, PropReceiveMaximum)
	flag(p.TopicAliasMaximum != 0, PropTopicAliasMaximum)
	flag(p.TopicAlias != 0, PropTopicAlias)
	flag(p.MaximumQoS != 0, PropMaximumQoS)
	flag(p.RetainAvailable != 0, PropRetainAvailable)
	flag(len(p.User) != 0, PropUser)
	flag(p.MaximumPacketSize != 0, PropMaximumPacketSize)
	flag(p.WildcardSubAvailable != 0, PropWildcardSubAvailable)
	flag(p.SubIDAvailable != 0, PropSubIDAvailable)
	flag(p.SharedSubAvailable != 0, PropSharedSubAvailable)
	// Multi-valued properties are present exactly when they hold values.
	if len(p.SubscriptionIDs) == 0 {
		m &^= 1 << PropSubscriptionID
	}
	if len(p.User) == 0 {
		m &^= 1 << PropUser
	}
	return m
}

// Clone returns a deep copy of p that shares no memory with it. Decoded
// properties alias the packet buffer; a broker that keeps them (to forward
// with a message, say) clones them first.
func (p *Properties) Clone() *Properties {
	c := *p
	c.ContentType = strings.Clone(p.ContentType)
	c.ResponseTopic = strings.Clone(p.ResponseTopic)
	c.AssignedClientID = strings.Clone(p.AssignedClientID)
	c.AuthMethod = strings.Clone(p.AuthMethod)
	c.ResponseInfo = strings.Clone(p.ResponseInfo)
	c.ServerReference = strings.Clone(p.ServerReference)
	c.ReasonString = strings.Clone(p.ReasonString)
	c.CorrelationData = cloneBytes(p.CorrelationData)
	c.AuthData = cloneBytes(p.AuthData)
	c.SubscriptionIDs = nil
	if len(p.SubscriptionIDs) > 0 {
		c.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	}
	c.User = nil
	if len(p.User) > 0 {
		c.User = make([]UserProperty, len(p.User))
		for i, u := range p.User {
			c.User[i] = UserProperty{Key: strings.Clone(u.Key), Value: strings.Clone(u.Value)}
		}
	}
	return &c
}

// cloneBytes copies b, keeping nil and empty apart (presence depends on it).
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}
