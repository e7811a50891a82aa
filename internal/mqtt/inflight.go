package mqtt

// Outbound QoS 1 and 2 state of a session.

const (
	awaitAck  uint8 = iota + 1 // QoS 1: PUBACK; QoS 2: PUBREC
	awaitComp                  // QoS 2: PUBREL sent, awaiting PUBCOMP
	entryDone                  // acknowledged out of order; slot reclaimed when it reaches the head
)

type inflightEntry struct {
	pid   uint16
	state uint8
	d     delivery
}

// inflightRing is the outbound window in send order. Clients acknowledge in
// order in practice, so lookups hit the head; an out-of-order ack marks its
// entry done and the slot is reclaimed when the head reaches it. The window
// counts entries still awaiting an ack, so one unacknowledged message never
// holds back the rest: the ring grows past the window instead. It is
// allocated on the first QoS 1/2 delivery (idle clients pay nothing for
// it) and grows as the window fills.
type inflightRing struct {
	ents []inflightEntry
	head int
	n    int // occupied slots, head..head+n
	live int // entries not done
}

func (r *inflightRing) full(window int) bool { return r.live >= window }

func (r *inflightRing) push(window int, e inflightEntry) {
	if r.n == len(r.ents) {
		// First use, a window filling up, or the session came back with
		// a larger Receive Maximum than its ring was made for. The ring
		// doubles up to the window, so a large window costs memory only
		// to the clients that fill it.
		ents := make([]inflightEntry, max(r.n+1, min(window, max(8, 2*len(r.ents)))))
		for i := 0; i < r.n; i++ {
			ents[i] = r.ents[(r.head+i)%len(r.ents)]
		}
		r.ents, r.head = ents, 0
	}
	r.ents[(r.head+r.n)%len(r.ents)] = e
	r.n++
	r.live++
}

// find returns the live entry with packet id pid, or nil.
func (r *inflightRing) find(pid uint16) *inflightEntry {
	for i := 0; i < r.n; i++ {
		e := &r.ents[(r.head+i)%len(r.ents)]
		if e.pid == pid && e.state != entryDone {
			return e
		}
	}
	return nil
}

// done retires e and reclaims every finished slot at the head.
func (r *inflightRing) done(e *inflightEntry) {
	e.state = entryDone
	e.d = delivery{}
	r.live--
	r.reclaim()
}

// each visits live entries in send order (for resending on reconnect).
func (r *inflightRing) each(fn func(e *inflightEntry)) {
	for i := 0; i < r.n; i++ {
		e := &r.ents[(r.head+i)%len(r.ents)]
		if e.state != entryDone {
			fn(e)
		}
	}
}

// deliveryQueue is a FIFO of deliveries waiting for a window slot, for the
// client to come back, or for a receive check. bytes counts the topic,
// payload and property bytes of the deliveries it holds, for the byte bound.
type deliveryQueue struct {
	q     []delivery
	head  int
	bytes int
}

// size is what a queued delivery counts against the byte bound: its
// message's topic, payload and MQTT 5 properties, which are forwarded and
// can be as large as the payload (a message shared by many sessions counts
// in each queue, as each would keep it alive alone). The message is
// immutable, so push and pop count the same.
func (d *delivery) size() int { return len(d.msg.Topic) + len(d.msg.Payload) + d.msg.Props.Size() }

func (q *deliveryQueue) len() int { return len(q.q) - q.head }

func (q *deliveryQueue) push(d delivery) {
	q.q = append(q.q, d)
	q.bytes += d.size()
}

// pushFront puts d back at the head, where pop took it from: a delivery
// that could not go out keeps its place ahead of later ones. It is not
// subject to the queue bounds, since d was already counted in them.
func (q *deliveryQueue) pushFront(d delivery) {
	if q.head > 0 {
		q.head--
		q.q[q.head] = d
	} else {
		q.q = append(q.q, delivery{})
		copy(q.q[1:], q.q)
		q.q[0] = d
	}
	q.bytes += d.size()
}

func (q *deliveryQueue) peek() *delivery { return &q.q[q.head] }

func (q *deliveryQueue) pop() delivery {
	d := q.q[q.head]
	q.bytes -= d.size()
	q.q[q.head] = delivery{}
	q.head++
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
		if cap(q.q) > 1024 {
			q.q = nil // give back the memory of a burst
		}
	} else if q.head > 256 && q.head*2 > len(q.q) {
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	return d
}

func (q *deliveryQueue) reset() { q.q, q.head, q.bytes = nil, 0, 0 }
