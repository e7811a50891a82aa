package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is everything a load run needs, after flag validation.
type loadConfig struct {
	broker         string
	scenario       string // pairs, fanout or fanin
	pubs, subs     int
	qos            byte
	size           int
	duration       time.Duration
	warmup         time.Duration
	drain          time.Duration
	rate           float64 // messages per second per publisher; 0 = closed loop
	window         int     // max messages outstanding per publisher; 0 = unbounded
	inflight       int     // max unacknowledged QoS 1/2 publishes per publisher
	burst          int     // free window slots needed before a blocked publisher resumes
	pid            int     // broker process, 0 = unknown
	keepAlive      time.Duration
	connectTimeout time.Duration
	topicPrefix    string
	clientsPrefix  string
	username       string
	password       string
	v5             bool // MQTT 5.0 instead of 3.1.1
	v5Props        bool // 5.0: every PUBLISH carries a message expiry and a user property
	probes         probes
}

// The properties -v5-props sends and expects back at every subscriber. The
// expiry is long enough never to expire during a run: the point is that
// the broker has to keep, count down and re-encode it.
const (
	v5PropsExpiry = 3600
	v5PropsKey    = "mqttbench"
	v5PropsValue  = "v5-props"
)

// paddedU64 keeps counters written by different goroutines on different
// cache lines: a publisher's per-subscriber progress counters are each
// written by one subscriber goroutine, and packing them would make every
// delivery bounce one line between cores.
type paddedU64 struct {
	atomic.Uint64
	_ [56]byte
}

// publisher is one publishing connection and its closed-loop state.
type publisher struct {
	idx   int
	topic string
	conn  *mconn

	sent  atomic.Uint64 // messages handed to the socket
	acked atomic.Uint64 // PUBACKs (QoS 1) or PUBCOMPs (QoS 2) received

	// done[k] is one past the highest sequence number subscriber slot k
	// has received from this publisher. Using the highest rather than a
	// count means a lost QoS 0 message stops counting as outstanding once
	// a later one arrives, so a lossy broker cannot stall the closed loop.
	done []paddedU64

	// Wake-up protocol for the closed loop. Before sleeping, the publisher
	// stores target (the done value every subscriber must reach), counts
	// the subscribers still below it and adds that count to remaining.
	// A subscriber whose done crosses target decrements remaining, and
	// the one that brings it to zero wakes the publisher. So a 1 -> 100
	// fan-out wakes its publisher once per window step instead of up to
	// 100 times. Races can only cause early wake-ups, after which the
	// publisher re-checks, never a lost one (see waitRoom).
	target    atomic.Uint64
	remaining atomic.Int64
	// ackWaiting tells the reader to wake the publisher after acks.
	ackWaiting atomic.Bool
	wake       chan struct{}

	// inflightIDs marks packet ids sent and not yet fully acknowledged:
	// it refuses to reuse an id the broker still holds and spots acks for
	// ids we never sent.
	inflightIDs [65536 / 32]atomic.Uint32

	// Owned by the publisher goroutine, read after it exits.
	sentInWindow uint64
	minDone      uint64 // cached lower bound of min(done)

	// limit is the most QoS 1/2 publishes left unacknowledged: -inflight
	// (or -window), and in 5.0 no more than the broker's Receive Maximum.
	// Set before the publisher starts.
	limit uint64

	// Owned by the reader goroutine, read after it exits.
	unexpectedAcks uint64
	pubrecs        uint64
	failedAcks     uint64 // 5.0: PUBACK/PUBREC/PUBCOMP with a failure reason code
}

func (p *publisher) idBusy(id uint16) bool {
	return p.inflightIDs[id>>5].Load()&(1<<(id&31)) != 0
}

func (p *publisher) setID(id uint16) { p.inflightIDs[id>>5].Or(1 << (id & 31)) }

// clearID clears id and reports whether it was set.
func (p *publisher) clearID(id uint16) bool {
	old := p.inflightIDs[id>>5].And(^uint32(1 << (id & 31)))
	return old&(1<<(id&31)) != 0
}

// packetID maps a sequence number to a non-zero id [MQTT-2.3.1-1].
func packetID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// seqWindow is how far back (in sequence numbers) a subscriber can tell a
// duplicate from a late arrival.
const seqWindow = 4096

// seqTrack follows one publisher's sequence numbers at one subscriber.
type seqTrack struct {
	next   uint64 // highest seen + 1
	unique uint64
	seen   [seqWindow / 64]uint64 // ring bitmap of the last seqWindow seqs
}

// see records seq and classifies it. late means it arrived after a higher
// sequence number (reordered, or redelivered after a loss was assumed).
// beyond means it was too old for the bitmap to rule out a duplicate; it
// is then counted as unique and late.
func (t *seqTrack) see(seq uint64) (dup, late, beyond bool) {
	if seq >= t.next {
		gap := seq - t.next
		if gap >= seqWindow {
			t.seen = [seqWindow / 64]uint64{}
		} else {
			// Slots for skipped seqs may still hold bits from seqWindow
			// ago; clear them so a later arrival is not taken for a dup.
			for s := t.next; s < seq; s++ {
				t.seen[s%seqWindow/64] &^= 1 << (s % 64)
			}
		}
		t.seen[seq%seqWindow/64] |= 1 << (seq % 64)
		t.next = seq + 1
		t.unique++
		return false, false, false
	}
	if t.next-seq > seqWindow {
		t.unique++
		return false, true, true
	}
	w, b := seq%seqWindow/64, uint64(1)<<(seq%64)
	if t.seen[w]&b != 0 {
		return true, false, false
	}
	t.seen[w] |= b
	t.unique++
	return false, true, false
}

// subscriber is one subscribing connection and its measurements; all but
// the atomics belong to its reader goroutine until that exits.
type subscriber struct {
	idx    int
	conn   *mconn
	filter string
	hist   histogram
	tracks []seqTrack // indexed by publisher

	unique atomic.Uint64 // unique deliveries, polled while draining
	recv   atomic.Uint64 // all PUBLISH packets, polled for progress

	deliveredInWindow uint64
	dups, late        uint64
	beyond            uint64
	corrupt           uint64
	misrouted         uint64
	badProps          uint64 // -v5-props: deliveries without the sent properties
	failedAcks        uint64 // 5.0: PUBREL with a failure reason code
}

// errorList collects run errors from many goroutines.
type errorList struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errorList) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 10 {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

// loadRun is one execution of a scenario.
type loadRun struct {
	cfg  loadConfig
	base time.Time // monotonic origin of every timestamp in the run

	// Measurement window in ns since base; set once publishing starts and
	// read by subscribers, hence atomic.
	winStart, winEnd atomic.Int64

	stop    atomic.Bool
	stopCh  chan struct{}
	closing atomic.Bool

	pubs      []*publisher
	subs      []*subscriber
	topics    [][]byte // publisher index -> topic, for routing checks
	props     []byte   // encoded PUBLISH properties (5.0; empty unless -v5-props)
	keepAlive time.Duration
	connErrs  errorList
	protoErrs errorList

	readers sync.WaitGroup
}

func (r *loadRun) now() int64 { return int64(time.Since(r.base)) }

func (r *loadRun) inWindow(t int64) bool {
	return t >= r.winStart.Load() && t < r.winEnd.Load()
}

// slot is the index of subscriber s in publisher p's done slice.
func (r *loadRun) slot(s *subscriber) int {
	if r.cfg.scenario == "pairs" {
		return 0
	}
	return s.idx
}

// expects reports whether subscriber s should receive publisher p's
// messages.
func (r *loadRun) expects(s *subscriber, p int) bool {
	return r.cfg.scenario != "pairs" || p == s.idx
}

func (r *loadRun) pubTopic(i int) string {
	if r.cfg.scenario == "fanout" {
		return r.cfg.topicPrefix + "/all"
	}
	return r.cfg.topicPrefix + "/" + strconv.Itoa(i)
}

func (r *loadRun) subFilter(i int) string {
	switch r.cfg.scenario {
	case "pairs":
		return r.cfg.topicPrefix + "/" + strconv.Itoa(i)
	case "fanout":
		return r.cfg.topicPrefix + "/all"
	default:
		return r.cfg.topicPrefix + "/+"
	}
}

func (r *loadRun) subsPerPub() int {
	if r.cfg.scenario == "pairs" {
		return 1
	}
	return r.cfg.subs
}

func (r *loadRun) connectOpts(id string) connectOptions {
	return connectOptions{
		clientID:     id,
		keepAlive:    uint16(r.cfg.keepAlive / time.Second),
		cleanSession: true,
		username:     r.cfg.username,
		password:     r.cfg.password,
		v5:           r.cfg.v5,
	}
}

// publishPacket encodes publisher p's PUBLISH with the given payload; the
// publisher rewrites its packet id and payload in place.
func (r *loadRun) publishPacket(p *publisher, payload []byte) []byte {
	if r.cfg.v5 {
		return appendPublish5(nil, p.topic, r.cfg.qos, 1, r.props, payload)
	}
	return appendPublish(nil, p.topic, r.cfg.qos, 1, payload)
}

// applyLimits makes every connection obey what a 5.0 broker announced in
// its CONNACK: Maximum QoS and Maximum Packet Size (checked once, failing
// the run: this benchmark does not downgrade), Receive Maximum (lowers
// the publisher's in-flight limit) and Server Keep Alive (sets the ping
// interval). With 3.1.1 the limits are the defaults and change nothing.
func (r *loadRun) applyLimits() error {
	r.keepAlive = r.cfg.keepAlive
	size := len(r.publishPacket(&publisher{topic: r.pubTopic(0)}, make([]byte, r.cfg.size)))
	check := func(who string, idx int, l serverLimits) error {
		if r.cfg.qos > l.maxQoS {
			return fmt.Errorf("%s %d: broker's Maximum QoS is %d, -qos %d asked", who, idx, l.maxQoS, r.cfg.qos)
		}
		if l.maxPacket > 0 && uint32(size) > l.maxPacket {
			return fmt.Errorf("%s %d: broker's Maximum Packet Size is %d bytes, a PUBLISH here has %d", who, idx, l.maxPacket, size)
		}
		if ka := time.Duration(l.keepAlive) * time.Second; ka > 0 && (r.keepAlive == 0 || ka < r.keepAlive) {
			r.keepAlive = ka
		}
		return nil
	}
	for _, p := range r.pubs {
		if err := check("publisher", p.idx, p.conn.lim); err != nil {
			return err
		}
		p.limit = min(r.inflightLimit(), uint64(p.conn.lim.receiveMax))
	}
	for _, s := range r.subs {
		if err := check("subscriber", s.idx, s.conn.lim); err != nil {
			return err
		}
	}
	return nil
}

// setup opens every connection: subscribers first, so that no message is
// published before every subscription is in place.
func (r *loadRun) setup() error {
	cfg := r.cfg
	r.pubs = make([]*publisher, cfg.pubs)
	r.subs = make([]*subscriber, cfg.subs)
	r.topics = make([][]byte, cfg.pubs)
	for i := range r.pubs {
		r.topics[i] = []byte(r.pubTopic(i))
		r.pubs[i] = &publisher{
			idx:   i,
			topic: r.pubTopic(i),
			done:  make([]paddedU64, r.subsPerPub()),
			wake:  make(chan struct{}, 1),
		}
	}
	for i := range r.subs {
		r.subs[i] = &subscriber{idx: i, filter: r.subFilter(i), tracks: make([]seqTrack, cfg.pubs)}
	}
	// Bounded parallelism: fast for hundreds of connections without a
	// connect storm that would measure the broker's accept backlog.
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, s := range r.subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("%ss%d", cfg.clientsPrefix, s.idx)
			m, err := dialMQTT(cfg.broker, r.connectOpts(id), cfg.connectTimeout, readBufSize)
			if err == nil {
				if err = m.subscribe(s.filter, cfg.qos, cfg.connectTimeout); err != nil {
					m.c.Close()
					err = fmt.Errorf("%s: %w", id, err)
				}
			}
			if err != nil {
				failed.Store(true)
				r.connErrs.add("subscriber %d: %v", s.idx, err)
				return
			}
			s.conn = m
		}()
	}
	wg.Wait()
	for _, p := range r.pubs {
		if failed.Load() {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("%sp%d", cfg.clientsPrefix, p.idx)
			m, err := dialMQTT(cfg.broker, r.connectOpts(id), cfg.connectTimeout, readBufSize)
			if err != nil {
				failed.Store(true)
				r.connErrs.add("publisher %d: %v", p.idx, err)
				return
			}
			p.conn = m
		}()
	}
	wg.Wait()
	if failed.Load() {
		r.closeAll()
		return fmt.Errorf("could not set up connections (%d errors)", r.connErrs.n)
	}
	if err := r.applyLimits(); err != nil {
		r.connErrs.add("%v", err)
		r.closeAll()
		return err
	}
	return nil
}

func (r *loadRun) startReaders() {
	for _, s := range r.subs {
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			err := s.conn.readLoop(func(typ, flags byte, body []byte, now int64) error {
				return r.subPacket(s, typ, flags, body, now)
			}, r.now)
			if err != nil && !r.closing.Load() {
				r.connErrs.add("subscriber %d: %v", s.idx, err)
			}
		}()
	}
	for _, p := range r.pubs {
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			err := p.conn.readLoop(func(typ, flags byte, body []byte, _ int64) error {
				return r.pubPacket(p, typ, body)
			}, r.now)
			if err != nil && !r.closing.Load() {
				r.connErrs.add("publisher %d: %v", p.idx, err)
			}
		}()
	}
}

// subPacket handles one packet arriving at a subscriber. It runs once per
// delivered message and must not allocate.
func (r *loadRun) subPacket(s *subscriber, typ, flags byte, body []byte, now int64) error {
	switch typ {
	case typePublish:
	case typePubrel:
		// Second half of QoS 2 receipt: the broker released the message
		// we already counted at PUBLISH time [MQTT-4.3.3-2].
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		if reason >= reasonFailure {
			s.failedAcks++
		}
		s.conn.out = appendAck(s.conn.out, typePubcomp, id)
		return nil
	case typePingresp:
		return nil
	case typeDisconnect:
		if r.cfg.v5 {
			return disconnectError(body)
		}
		fallthrough
	default:
		r.protoErrs.add("subscriber %d: unexpected packet type %d", s.idx, typ)
		return nil
	}
	var topic, props, payload []byte
	var qos byte
	var id uint16
	var err error
	if r.cfg.v5 {
		topic, props, payload, qos, id, err = parsePublish5(flags, body)
	} else {
		topic, payload, qos, id, err = parsePublish(flags, body)
	}
	if err != nil {
		return err
	}
	if r.cfg.v5Props && !publishPropsOK(props, v5PropsExpiry, v5PropsKey, v5PropsValue) {
		s.badProps++
	}
	switch qos {
	case 1:
		s.conn.out = appendAck(s.conn.out, typePuback, id)
	case 2:
		s.conn.out = appendAck(s.conn.out, typePubrec, id)
	}
	s.recv.Add(1)
	pubIdx, seq, sentNs, ok := readPayload(payload)
	if !ok || len(payload) != r.cfg.size || int(pubIdx) >= len(r.pubs) {
		s.corrupt++
		return nil
	}
	if !r.expects(s, int(pubIdx)) || !bytes.Equal(topic, r.topics[pubIdx]) {
		s.misrouted++
		return nil
	}
	t := &s.tracks[pubIdx]
	before := t.next
	dup, late, beyond := t.see(seq)
	if dup {
		s.dups++
		return nil
	}
	if late {
		s.late++
	}
	if beyond {
		s.beyond++
	}
	s.unique.Store(s.unique.Load() + 1) // single writer: no read-modify-write needed
	if r.inWindow(now) {
		s.deliveredInWindow++
	}
	if r.inWindow(sentNs) {
		s.hist.record(now - sentNs)
	}
	if t.next != before {
		p := r.pubs[pubIdx]
		p.done[r.slot(s)].Store(t.next)
		if tg := p.target.Load(); before < tg && t.next >= tg {
			if p.remaining.Add(-1) == 0 {
				select {
				case p.wake <- struct{}{}:
				default:
				}
			}
		}
	}
	return nil
}

// parseAck decodes PUBACK, PUBREC, PUBREL or PUBCOMP in the run's
// protocol; 3.1.1 acks have no reason code and report success.
func (r *loadRun) parseAck(body []byte) (id uint16, reason byte, err error) {
	if r.cfg.v5 {
		return parseAck5(body)
	}
	id, err = parseAck(body)
	return id, reasonSuccess, err
}

// disconnectError describes a DISCONNECT a 5.0 broker sent us; the
// connection ends with it.
func disconnectError(body []byte) error {
	reason, err := parseDisconnect5(body)
	if err != nil {
		return fmt.Errorf("broker sent a malformed DISCONNECT (reason code 0x%02x): %w", reason, err)
	}
	return fmt.Errorf("broker sent DISCONNECT with reason code 0x%02x", reason)
}

// pubPacket handles acknowledgements arriving at a publisher.
func (r *loadRun) pubPacket(p *publisher, typ byte, body []byte) error {
	switch typ {
	case typePuback, typePubcomp:
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		want := byte(typePuback)
		if r.cfg.qos == 2 {
			want = typePubcomp
		}
		if typ != want || !p.clearID(id) {
			p.unexpectedAcks++
			return nil
		}
		if reason >= reasonFailure {
			// The broker refused the message; its id and its Receive
			// Maximum slot are free again, and the loss will show.
			p.failedAcks++
		}
		p.ackDone()
	case typePubrec:
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		if r.cfg.qos != 2 || !p.idBusy(id) {
			p.unexpectedAcks++
			return nil
		}
		p.pubrecs++
		if reason >= reasonFailure {
			// 5.0: a failed PUBREC ends the exchange; no PUBREL follows
			// and the slot is free (section 4.3.3).
			p.failedAcks++
			p.clearID(id)
			p.ackDone()
			return nil
		}
		// [MQTT-4.3.3-1] answer PUBREC with PUBREL; batched with the
		// other acks of this read.
		p.conn.out = appendAck(p.conn.out, typePubrel, id)
	case typePingresp:
	case typeDisconnect:
		if r.cfg.v5 {
			return disconnectError(body)
		}
		fallthrough
	default:
		r.protoErrs.add("publisher %d: unexpected packet type %d", p.idx, typ)
	}
	return nil
}

// ackDone counts a finished QoS 1/2 exchange and wakes the publisher if
// it waits for one.
func (p *publisher) ackDone() {
	p.acked.Add(1)
	if p.ackWaiting.Load() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// burst is how many window slots must be free before a blocked publisher
// resumes: at least 1, at most the window.
func (r *loadRun) burst() uint64 {
	return uint64(min(max(r.cfg.burst, 1), r.cfg.window))
}

// inflightLimit is the most QoS 1/2 publishes a publisher leaves
// unacknowledged; packet ids make 65535 the hard ceiling.
func (r *loadRun) inflightLimit() uint64 {
	n := r.cfg.inflight
	if n <= 0 {
		n = r.cfg.window
	}
	if n <= 0 || n > 65535 {
		n = 65535
	}
	return uint64(n)
}

// roomFor reports whether the publisher may send sequence number seq
// without exceeding its window or in-flight limit. When the delivery
// window is full it arms the wake-up protocol and returns armed = true:
// the caller must then sleep until woken (or re-check at once when the
// arming found every subscriber already past the target).
func (r *loadRun) roomFor(p *publisher, seq uint64) (ok, armed bool) {
	if w := uint64(r.cfg.window); w > 0 && seq-p.minDone >= w {
		p.minDone = minDone(p.done)
		if seq-p.minDone >= w {
			// Sleep until -burst slots are free. The default of 1 keeps
			// the offered load smooth (one message per freed slot, as
			// the research figures were measured); a larger burst wakes
			// the publisher less often but hands the broker bursts and
			// changes what is measured (Mosquitto 2.0.11 p2p QoS 0 here:
			// ~150 k del/s with 1, ~190 k with 32).
			tg := seq - w + r.burst()
			p.remaining.Store(0)
			p.target.Store(tg)
			var below int64
			lo := ^uint64(0)
			for k := range p.done {
				d := p.done[k].Load()
				if d < tg {
					below++
				}
				lo = min(lo, d)
			}
			p.minDone = lo
			if below == 0 || p.remaining.Add(below) <= 0 {
				// Everyone crossed while we were arming.
				return false, false
			}
			return false, true
		}
	}
	if r.cfg.qos > 0 {
		limit := p.limit
		if limit == 0 {
			limit = r.inflightLimit()
		}
		if seq-p.acked.Load() >= limit || p.idBusy(packetID(seq)) {
			p.ackWaiting.Store(true)
			// Re-check after announcing, or an ack that arrived in
			// between would never wake us.
			if seq-p.acked.Load() < limit && !p.idBusy(packetID(seq)) {
				p.ackWaiting.Store(false)
				return true, false
			}
			return false, true
		}
	}
	return true, false
}

func minDone(done []paddedU64) uint64 {
	lo := ^uint64(0)
	for k := range done {
		lo = min(lo, done[k].Load())
	}
	return lo
}

// waitRoom blocks until seq may be sent; false means the run is stopping.
func (r *loadRun) waitRoom(p *publisher, seq uint64) bool {
	for {
		if r.stop.Load() {
			return false
		}
		ok, armed := r.roomFor(p, seq)
		if ok {
			return true
		}
		if armed {
			select {
			case <-p.wake:
			case <-r.stopCh:
				return false
			}
			p.ackWaiting.Store(false)
		}
	}
}

// publish is the publisher goroutine: one write per message, like a
// device, paced by -rate or by the closed-loop window.
func (r *loadRun) publish(p *publisher, start int64) {
	cfg := r.cfg
	payload := make([]byte, cfg.size)
	for i := payloadHeader; i < len(payload); i++ {
		payload[i] = byte('a' + i%26)
	}
	pkt := r.publishPacket(p, payload)
	payOff := len(pkt) - cfg.size
	// The packet id follows the topic (in 5.0 the properties come after
	// it, so it is not simply in front of the payload).
	_, _, body, _, _, _ := parsePacket(pkt)
	idOff := len(pkt) - len(body) + 2 + len(p.topic)

	var timer *time.Timer
	var interval, phase float64
	if cfg.rate > 0 {
		interval = float64(time.Second) / cfg.rate
		phase = float64(p.idx) / float64(len(r.pubs))
		timer = time.NewTimer(time.Hour)
		timer.Stop()
	}
	for seq := uint64(0); ; seq++ {
		if r.stop.Load() {
			return
		}
		if cfg.rate > 0 {
			// Fixed schedule from the common start, each publisher
			// shifted by a fraction of the interval so N publishers do
			// not fire in lock-step bursts. When behind we catch up
			// rather than silently lowering the rate.
			due := start + int64((float64(seq)+phase)*interval)
			if d := due - r.now(); d > 0 {
				timer.Reset(time.Duration(d))
				select {
				case <-timer.C:
				case <-r.stopCh:
					return
				}
			}
		}
		if !r.waitRoom(p, seq) {
			return
		}
		if cfg.qos > 0 {
			id := packetID(seq)
			p.setID(id)
			pkt[idOff] = byte(id >> 8)
			pkt[idOff+1] = byte(id)
		}
		now := r.now()
		stampPayload(pkt[payOff:], uint32(p.idx), seq, now)
		if r.inWindow(now) {
			p.sentInWindow++
		}
		p.sent.Store(seq + 1)
		if _, err := p.conn.c.Write(pkt); err != nil {
			if !r.closing.Load() {
				r.connErrs.add("publisher %d: write: %v", p.idx, err)
			}
			return
		}
	}
}

// complete reports whether every expected delivery and ack has arrived,
// and a progress counter that changes while anything still arrives.
func (r *loadRun) complete() (bool, uint64) {
	var progress uint64
	done := true
	for _, p := range r.pubs {
		a := p.acked.Load()
		progress += a
		if r.cfg.qos > 0 && a != p.sent.Load() {
			done = false
		}
	}
	for _, s := range r.subs {
		progress += s.recv.Load()
		var want uint64
		for i, p := range r.pubs {
			if r.expects(s, i) {
				want += p.sent.Load()
			}
		}
		if s.unique.Load() < want {
			done = false
		}
	}
	return done, progress
}

// closeAll says goodbye and closes every connection; readers then exit.
func (r *loadRun) closeAll() {
	r.closing.Store(true)
	for _, p := range r.pubs {
		if p.conn != nil {
			p.conn.c.Write(p.conn.disconnect())
			p.conn.c.Close()
		}
	}
	for _, s := range r.subs {
		if s.conn != nil {
			s.conn.c.Write(s.conn.disconnect())
			s.conn.c.Close()
		}
	}
}

// pinger sends PINGREQ on every connection at half the keep-alive, so that
// long runs and silent subscribers are not disconnected by the broker. A
// concurrent Write on a net.Conn is serialised by the runtime, so a
// PINGREQ never lands inside another packet.
func (r *loadRun) pinger(done <-chan struct{}) {
	if r.keepAlive <= 0 {
		return
	}
	t := time.NewTicker(r.keepAlive / 2)
	defer t.Stop()
	ping := appendPingreq(nil)
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for _, p := range r.pubs {
				p.conn.c.Write(ping)
			}
			for _, s := range r.subs {
				s.conn.c.Write(ping)
			}
		}
	}
}

// cpuSample is CPU time of the broker, this process and the whole machine
// at one moment.
type cpuSample struct {
	self, broker, system time.Duration
	brokerErr, systemErr error
}

func (r *loadRun) sampleCPU() cpuSample {
	var c cpuSample
	c.system, c.systemErr = systemBusy()
	c.self, _ = procCPU(0)
	if r.cfg.pid > 0 {
		c.broker, c.brokerErr = procCPU(r.cfg.pid)
	}
	return c
}

// execute runs the scenario and returns its result.
func (r *loadRun) execute() (*result, error) {
	cfg := r.cfg
	r.base = time.Now()
	r.stopCh = make(chan struct{})
	// Until publishing starts nothing is in the window.
	r.winStart.Store(1<<62 - 1)
	r.winEnd.Store(1<<62 - 1)
	if cfg.pid > 0 {
		if _, err := procCPU(cfg.pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", cfg.pid, err)
		}
	}
	if cfg.v5Props {
		r.props = appendPublishProps(nil, v5PropsExpiry, v5PropsKey, v5PropsValue)
	}
	var probeErrs errorList
	pre := cfg.probes.snap(&probeErrs)
	if err := r.setup(); err != nil {
		return r.collect(cpuSample{}, cpuSample{}, 0), err
	}
	r.startReaders()
	pingDone := make(chan struct{})
	go r.pinger(pingDone)

	start := r.now()
	r.winEnd.Store(start + int64(cfg.warmup+cfg.duration))
	r.winStart.Store(start + int64(cfg.warmup))
	var pubWG sync.WaitGroup
	for _, p := range r.pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			r.publish(p, start)
		}()
	}
	time.Sleep(time.Duration(r.winStart.Load() - r.now()))
	before := r.sampleCPU()
	snapStart := cfg.probes.snap(&probeErrs)
	time.Sleep(time.Duration(r.winEnd.Load() - r.now()))
	after := r.sampleCPU()
	snapEnd := cfg.probes.snap(&probeErrs)
	r.stop.Store(true)
	close(r.stopCh)
	pubWG.Wait()

	// Drain: wait for stragglers until everything arrived, nothing has
	// moved for a second (lost messages will not come), or -drain expires.
	deadline := time.Now().Add(cfg.drain)
	lastProgress := time.Now()
	_, last := r.complete()
	for time.Now().Before(deadline) {
		done, prog := r.complete()
		if done {
			break
		}
		if prog != last {
			last, lastProgress = prog, time.Now()
		} else if time.Since(lastProgress) > time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(pingDone)
	r.closeAll()
	r.readers.Wait()
	res := r.collect(before, after, cfg.duration)
	if cfg.probes != (probes{}) {
		final := cfg.probes.settle(&probeErrs, 10*time.Second)
		res.addProbes(cfg.probes, pre, snapStart, snapEnd, final, &probeErrs)
	}
	return res, nil
}
