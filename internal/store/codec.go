package store

// Record encodings, version 1. Each starts with its version byte; a decoder
// rejects an unknown version, a truncated record, out-of-range values and
// trailing bytes with an error wrapping ErrCorrupt.

const (
	messageV1 = 1
	sessionV1 = 1
)

// AppendMessage appends the encoding of m to dst.
func AppendMessage(dst []byte, m *MessageRecord) []byte {
	e := Encoder{B: dst}
	e.Byte(messageV1)
	e.String(m.Topic)
	e.Bytes(m.Payload)
	e.Byte(m.QoS)
	e.Bool(m.Retain)
	e.String(m.From)
	e.Time(m.Created)
	e.Bytes(m.Props)
	return e.B
}

// DecodeMessage decodes what AppendMessage wrote.
func DecodeMessage(b []byte) (*MessageRecord, error) {
	d := Decoder{B: b, What: "message"}
	m := decodeMessage(&d)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeMessage(d *Decoder) *MessageRecord {
	d.Version(messageV1)
	m := &MessageRecord{}
	m.Topic = d.String()
	m.Payload = d.Bytes()
	m.QoS = d.QoS()
	m.Retain = d.Bool()
	m.From = d.String()
	m.Created = d.Time()
	m.Props = d.Bytes()
	return m
}

// AppendSession appends the encoding of s to dst.
func AppendSession(dst []byte, s *SessionRecord) []byte {
	e := Encoder{B: dst}
	e.Byte(sessionV1)
	e.String(s.ClientID)
	e.String(s.Username)
	e.Byte(s.Version)
	e.Uvarint(uint64(s.Expiry))
	e.Time(s.OfflineSince)
	e.Uvarint(uint64(s.WillDelay))
	e.Bool(s.Will != nil)
	if s.Will != nil {
		e.B = AppendMessage(e.B, s.Will)
	}
	e.Uvarint(uint64(len(s.Subs)))
	for i := range s.Subs {
		sub := &s.Subs[i]
		e.String(sub.Filter)
		e.Byte(sub.QoS)
		e.Bool(sub.NoLocal)
		e.Bool(sub.RetainAsPublished)
		e.Uvarint(uint64(sub.SubscriptionID))
	}
	return e.B
}

// DecodeSession decodes what AppendSession wrote.
func DecodeSession(b []byte) (*SessionRecord, error) {
	d := Decoder{B: b, What: "session"}
	d.Version(sessionV1)
	s := &SessionRecord{}
	s.ClientID = d.String()
	s.Username = d.String()
	s.Version = d.Byte()
	s.Expiry = d.Uint32()
	s.OfflineSince = d.Time()
	s.WillDelay = d.Uint32()
	if d.Bool() {
		s.Will = decodeMessage(&d)
	}
	const minSub = 5 // empty filter, qos, two flags, id
	if n := d.Count(minSub); n > 0 {
		s.Subs = make([]SubscriptionRecord, n)
		for i := range s.Subs {
			sub := &s.Subs[i]
			sub.Filter = d.String()
			sub.QoS = d.QoS()
			sub.NoLocal = d.Bool()
			sub.RetainAsPublished = d.Bool()
			sub.SubscriptionID = d.Uint32()
		}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return s, nil
}

// CloneMessage deep-copies m with its time normalised as the encoding
// keeps it; nil stays nil.
func CloneMessage(m *MessageRecord) *MessageRecord {
	if m == nil {
		return nil
	}
	c := *m
	c.Payload = cloneBytes(m.Payload)
	c.Props = cloneBytes(m.Props)
	c.Created = NormalTime(m.Created)
	return &c
}

// CloneSession deep-copies s as CloneMessage does.
func CloneSession(s *SessionRecord) *SessionRecord {
	c := *s
	c.OfflineSince = NormalTime(s.OfflineSince)
	c.Will = CloneMessage(s.Will)
	if len(s.Subs) > 0 {
		c.Subs = append([]SubscriptionRecord(nil), s.Subs...)
	} else {
		c.Subs = nil
	}
	return &c
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
