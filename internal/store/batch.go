package store

// OpKind names a batch operation.
type OpKind byte

// Batch operations, one per Batch method of the same name.
const (
	OpPutSession OpKind = iota + 1
	OpDeleteSession
	OpPutRetained
	OpDeleteRetained
	OpEnqueue
	OpAck
	OpSetInflight
	OpClearInflight
	OpAddQoS2In
	OpRemoveQoS2In
)

// Op is one recorded write. Implementations read it; the broker builds it
// through Batch's methods.
type Op struct {
	Kind       OpKind         // which fields below apply
	ClientID   string         // session ops, Ack, inflight and QoS 2 ops
	Topic      string         // DeleteRetained
	Session    *SessionRecord // PutSession
	Msg        *MessageRecord // PutRetained, Enqueue
	Deliveries []Delivery     // Enqueue: Seq written at commit
	Seq        uint64         // Ack
	Inflight   InflightRecord // SetInflight
	PacketID   uint16         // ClearInflight, QoS 2 ops
}

// Batch collects writes to commit together, in order. The records and
// slices handed to it are referenced, not copied: leave them alone until
// the commit is done. A Batch is not safe for concurrent use; reuse one
// after its commit with Reset.
type Batch struct {
	Ops []Op // in the order recorded, which is the order applied
}

// PutSession creates or replaces a session record (its queue and packet
// ids are kept).
func (b *Batch) PutSession(r *SessionRecord) {
	b.Ops = append(b.Ops, Op{Kind: OpPutSession, ClientID: r.ClientID, Session: r})
}

// DeleteSession removes a session with its queue, in-flight and QoS 2
// packet ids, releasing its message references.
func (b *Batch) DeleteSession(clientID string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteSession, ClientID: clientID})
}

// PutRetained sets the retained message of m.Topic.
func (b *Batch) PutRetained(m *MessageRecord) {
	b.Ops = append(b.Ops, Op{Kind: OpPutRetained, Topic: m.Topic, Msg: m})
}

// DeleteRetained clears the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteRetained, Topic: topic})
}

// Enqueue stores m once and appends a reference to it to the queue of each
// delivery's session. Each ds[i].Seq is set when the batch commits.
// Deliveries with no sessions store nothing.
func (b *Batch) Enqueue(m *MessageRecord, ds []Delivery) {
	if len(ds) > 0 {
		b.Ops = append(b.Ops, Op{Kind: OpEnqueue, Msg: m, Deliveries: ds})
	}
}

// Ack removes delivery seq from clientID's queue; the message goes with its
// last reference. Acknowledging a missing entry does nothing.
func (b *Batch) Ack(clientID string, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpAck, ClientID: clientID, Seq: seq})
}

// SetInflight records or updates an outbound packet id.
func (b *Batch) SetInflight(clientID string, r InflightRecord) {
	b.Ops = append(b.Ops, Op{Kind: OpSetInflight, ClientID: clientID, Inflight: r})
}

// ClearInflight forgets an outbound packet id once its flow is complete
// (PUBACK, or PUBCOMP), so a resumed session does not resend it.
func (b *Batch) ClearInflight(clientID string, pid uint16) {
	b.Ops = append(b.Ops, Op{Kind: OpClearInflight, ClientID: clientID, PacketID: pid})
}

// AddQoS2In records an inbound QoS 2 packet id answered with PUBREC.
func (b *Batch) AddQoS2In(clientID string, pid uint16) {
	b.Ops = append(b.Ops, Op{Kind: OpAddQoS2In, ClientID: clientID, PacketID: pid})
}

// RemoveQoS2In forgets an inbound QoS 2 packet id (PUBREL arrived).
func (b *Batch) RemoveQoS2In(clientID string, pid uint16) {
	b.Ops = append(b.Ops, Op{Kind: OpRemoveQoS2In, ClientID: clientID, PacketID: pid})
}

// Len is the number of recorded operations.
func (b *Batch) Len() int { return len(b.Ops) }

// Reset empties b for reuse, keeping its capacity so that one Batch can
// serve many commits without allocating, and dropping its references to
// the records of the last one.
func (b *Batch) Reset() {
	clear(b.Ops)
	b.Ops = b.Ops[:0]
}
