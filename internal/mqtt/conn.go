package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// client is one network connection from CONNECT to close. Its reader
// goroutine decodes and handles inbound packets (so a slow hook delays only
// this client). A writer goroutine runs only while there is something to
// write, flushing all of it in as few syscalls as possible. An idle
// connection parks (park.go): on Linux it then holds no goroutine and no
// read buffer, only its structs and socket.
type client struct {
	b       *Broker
	conn    net.Conn
	l       *listener
	info    ClientInfo
	version packets.Version
	sess    *Session
	ctx     context.Context // ends when the connection does
	cancel  context.CancelFunc
	r       packetReader

	// Owned by the reader goroutine.
	pubGrant        pubGrantCache // the last publish decided by the grants
	pub             *packets.Publish
	received        *receivedEvent // made at the first broker_message_received
	routes          routeCache     // what the last published topic matched (routeFrom)
	pktsIn          int64
	msgsIn          int64
	keepAlive       time.Duration
	connectDeadline time.Time
	will            *Message
	willDelay       uint32        // MQTT 5 Will Delay Interval, seconds
	graceful        bool          // DISCONNECT received: the will is discarded
	keepWill        bool          // MQTT 5 DISCONNECT 0x04: publish the will all the same
	aliases         []string      // MQTT 5 inbound topic aliases, indexed by alias
	reauth          *authExchange // an MQTT 5 re-authentication under way, or nil
	refused         bool          // a refusing CONNACK was sent (and logged)
	parkable        bool          // the reader may park when idle (plain TCP, own goroutine)
	inlineOK        bool          // a raw socket: the reader may write its own replies (writer_inline.go)
	inl             *inlineWriter // made at the first inline write (writer_inline.go); used by whoever holds the writer's role
	owes            []*client     // connections this reader writes out at the end of its batch (wakeByLocked)
	armed           bool          // a read deadline for the connected client is set

	// Fixed at CONNECT (MQTT 5; 3.1.1 clients keep the zero values).
	problemInfo bool   // the client accepts reason strings on any packet
	maxOut      int    // the client's Maximum Packet Size; 0 = none
	recvMax     int    // the client's Receive Maximum
	authMethod  string // enhanced authentication method
	aliasMax    uint16 // aliases the broker may send: min(client's Topic Alias Maximum, limits.topic-alias-maximum)

	// Guarded by sess.mu once the session is attached.
	out         []byte
	outMsgs     int64
	outPkts     int64
	writing     bool // someone holds the writer's role: a writer goroutine, or a reader writing inline
	lingering   bool // a writer goroutine waits without the role (writeLoop); only while !writing, or handed
	handed      bool // the role was handed to the lingering writer (wakeWriterLocked)
	wakePending bool // the writer has been told to flush and has not yet found the buffer empty
	closed      bool // finish has begun or a write failed: start no writer
	deferred    bool // a reader writes out at the end of its batch (wakeByLocked); no writer was woken
	// checking is set by the writer goroutine (pumpChecked) while the receive
	// check of a delivery it took off the queue runs outside the lock;
	// publishers read it (deliveryModeFor) so that no message checked in
	// line overtakes that one.
	checking bool
	// connackPending: the handshake's goroutine writes the CONNACK itself,
	// so attaching starts no writer (flushConnack).
	connackPending bool
	// outAliases are the topic aliases sent to this client (MQTT 5); nil
	// until the first.
	outAliases *outAliases
	// acks holds acknowledgements behind one waiting for the store; nil
	// until the first (persist_publish.go).
	acks *ackQueue
	// rb is the read batch's store writes, committed at its end
	// (persist_readbatch.go); nil until the first.
	rb *readBatch

	wake      chan struct{}
	spare     []byte // the writer's second buffer; only a writer touches it
	writers   sync.WaitGroup
	stopping  atomic.Bool // the broker is closing this connection
	takenOver atomic.Bool
	kicked    atomic.Bool  // an operator closed it (Broker.Kick)
	slowCut   atomic.Bool  // closed for holding publishers back too long (limits.slow-subscriber-timeout)
	flow      *flowControl // acknowledgements held back for slow subscribers; made at the first QoS 1/2 PUBLISH

	connectedAt time.Time // when CONNECT was accepted; set before the session is attached
}

// runConn serves one admitted socket. Beyond MaxConnections the socket is
// still accepted (never left queued in the kernel) and answered with
// "server unavailable". With handoff, the read side continues on a fresh
// goroutine once CONNECT is accepted (see handOff), so the deeper stack the
// handshake grew is not kept for the connection's whole life.
func (b *Broker) runConn(conn net.Conn, l *listener, handoff bool) {
	if b.nconns.Add(1) > int64(b.limits.MaxConnections) {
		b.refuseOverCapacity(conn, l)
		b.connDone()
		return
	}
	c := b.openConn(conn, l)
	if c == nil {
		b.connDone()
		return
	}
	c.flushConnack()
	if !handoff {
		c.serve()
		return
	}
	c.parkable = canPark(conn)
	c.handOff()
}

// connDone releases what runConn took for a connection that has ended.
func (b *Broker) connDone() {
	b.nconns.Add(-1)
	b.wg.Done()
}

// openConn registers the connection and runs the TLS and MQTT handshakes.
// It returns nil, with the socket closed, when the client is not accepted.
func (b *Broker) openConn(conn net.Conn, l *listener) *client {
	c := &client{b: b, l: l, wake: make(chan struct{}, 1), connackPending: true}
	c.conn = wrapForPark(conn, l, c)
	conn = c.conn
	_, c.inlineOK = conn.(syscall.Conn)
	c.info.Listener = l.name
	c.info.Transport = l.transport
	c.info.RemoteAddr = conn.RemoteAddr().String()
	if b.hooks.Topics != nil {
		c.info.Memo = new(CheckerMemo)
	}
	c.ctx, c.cancel = context.WithCancel(b.ctx)
	// Until CONNECT is accepted the reader is wary: it holds what arrived,
	// not what a packet announces, up to the pre-authentication bound.
	c.r = packetReader{conn: conn, max: b.limits.MaxConnectSize, wary: true, beforeRead: c.beforeRead}

	b.mu.Lock()
	b.conns[c] = struct{}{}
	if b.closing.Load() {
		c.shutdown() // admitted just before Close walked b.conns
	}
	b.mu.Unlock()

	if err := c.tlsHandshake(); err != nil {
		b.log.Debug("tls handshake failed", "remote", c.info.RemoteAddr, "err", err)
		c.abandon()
		return nil
	}
	if err := c.handshake(); err != nil {
		if !c.refused { // a refusal was logged at info already
			b.log.Debug("connection closed before CONNECT was accepted", "remote", c.info.RemoteAddr,
				"listener", c.info.Listener, "err", err)
		}
		b.flushReadStats(c)
		c.abandon()
		return nil
	}
	return c
}

// abandon drops a connection that never got a session.
func (c *client) abandon() {
	c.conn.Close()
	c.cancel()
	c.unregister()
}

func (c *client) unregister() {
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
}

func (c *client) tlsHandshake() error {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	tc.SetDeadline(time.Now().Add(c.b.limits.ConnectTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
		c.info.PeerCerts = st.PeerCertificates
	}
	return nil
}

// serve runs an accepted connection's read side until the connection ends
// or parks (a fresh goroutine then carries on).
func (c *client) serve() {
	err := c.readLoop()
	if c.owing() {
		c.flushOwed() // output of the last packets read
	}
	if err == errParked {
		if err = c.park(); err == nil {
			return
		}
	}
	c.end(err)
}

// end tears the connection down and releases its slot.
func (c *client) end(err error) {
	c.finish(err)
	c.cancel()
	c.unregister()
	c.b.connDone()
}

// beforeRead runs before every blocking read: it flushes the batch's
// counters and makes sure a read deadline is armed. Until CONNECT is
// accepted that is the connect timeout; after, it is armed once and moved
// only when it passes (timedOut), not on every read.
func (c *client) beforeRead() error {
	if c.owing() {
		c.flushOwed() // the batch's output, before the reader may block
	}
	c.b.flushReadStats(c)
	switch {
	case c.sess == nil:
		c.conn.SetReadDeadline(c.connectDeadline)
	case !c.armed:
		c.conn.SetReadDeadline(c.nextDeadline(time.Now(), c.parkable))
		c.armed = true
	}
	return c.closingErr()
}

// closingErr is why the broker is ending the connection, or nil. It is read
// after a read deadline is armed: those who end a connection set the flag
// first and then a past deadline, so either the flag is seen here or the
// read that follows wakes at once.
func (c *client) closingErr() error {
	switch {
	case c.stopping.Load():
		return errServerClosing
	case c.takenOver.Load():
		return errTakenOver
	case c.kicked.Load():
		return errKicked
	case c.slowCut.Load():
		return errSlowSubscriber
	}
	return nil
}

func (b *Broker) flushReadStats(c *client) {
	if c.r.bytes != 0 {
		b.stats.bytesIn.Add(c.r.bytes)
		c.r.bytes = 0
	}
	if c.pktsIn != 0 {
		b.stats.pktsIn.Add(c.pktsIn)
		c.pktsIn = 0
	}
	if c.msgsIn != 0 {
		b.stats.msgsIn.Add(c.msgsIn)
		c.msgsIn = 0
	}
}

var (
	errServerClosing = errors.New("server shutting down")
	errTakenOver     = errors.New("session taken over by a new connection")
	errKeepAlive     = errors.New("keep-alive timeout")
)

func (c *client) readLoop() error {
	for {
		fh, body, err := c.r.next()
		if err != nil {
			switch err = c.timedOut(err); err {
			case nil:
				continue
			case errParked:
				return err
			}
			return c.readError(err)
		}
		c.pktsIn++
		if !flowPacket(fh.Type) && c.owing() {
			c.flushOwed() // its handling may wait (hooks): what is owed does not
		}
		if err := c.handle(fh, body); err != nil {
			c.b.stats.malformed.Add(1) // every handler error is a protocol violation
			return err
		}
		if c.graceful {
			return nil
		}
	}
}

// flowPacket says whether a packet is one of a message flow's, whose
// handling never waits on a hook.
func flowPacket(t packets.Type) bool {
	return t >= packets.PUBLISH && t <= packets.PUBCOMP
}

// readError names why the read side ended.
func (c *client) readError(err error) error {
	if ce := c.closingErr(); ce != nil {
		return ce
	}
	switch {
	case c.reauthExpired(err):
		return errReauthTime
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.b.stats.keepAliveExpired.Add(1)
		return errKeepAlive
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return err
	}
	var pe *packets.Error
	if errors.As(err, &pe) || errors.Is(err, errPacketTooLarge) {
		c.b.stats.malformed.Add(1)
	}
	return err
}

// shutdown asks the connection to end because the broker is closing.
func (c *client) shutdown() {
	c.stopping.Store(true)
	c.conn.SetReadDeadline(time.Unix(1, 0))
	c.cancel()
}

// closeTakenOver ends the connection because a new one took its client id over: the
// reader wakes from its read and finish says why (MQTT 5: DISCONNECT 0x8E).
func (c *client) closeTakenOver() {
	c.takenOver.Store(true)
	c.conn.SetReadDeadline(time.Unix(1, 0))
	c.cancel()
}

// finish tears the connection down: tells an MQTT 5 client why when the
// broker ends it, stops the writer, detaches (or discards) the session,
// hands shared-subscription messages to other members, and publishes the
// will when the end was abnormal.
func (c *client) finish(cause error) {
	b := c.b
	s := c.sess
	stopWriters := func() {
		s.mu.Lock()
		c.closed = true
		if c.writing && !c.wakePending || c.lingering {
			c.wakePending = true
			c.signal() // a parked or lingering writer wakes, sees closed and exits
		}
		s.mu.Unlock()
		c.writers.Wait()
	}
	code := c.disconnectCode(cause)
	if code != 0 {
		s.mu.Lock()
		c.appendControl(&packets.Disconnect{ReasonCode: code})
		c.wakeWriterLocked()
		s.mu.Unlock()
	}
	if c.stopping.Load() || code != 0 || errors.Is(cause, errTakenOver) {
		// Let the writer flush what is queued (the DISCONNECT last), then
		// close; the write deadline bounds how long a stuck peer holds us.
		// A connection taken over right after it was accepted still gets
		// the CONNACK it was already sent.
		stopWriters()
		c.conn.Close()
	} else {
		c.conn.Close()
		stopWriters()
	}
	c.cancel()
	b.flushReadStats(c)

	b.connMu.Lock()
	s.mu.Lock()
	attached := s.client == c
	var orphans []delivery
	if attached {
		s.client = nil
		s.offlineSince = time.Now()
		orphans = s.takeShared()
	}
	s.mu.Unlock()
	var delayed *clientWill
	if attached && s.clean {
		delayed = b.discardSession(s)
	}
	b.connMu.Unlock()
	b.publishWill(delayed)
	b.stats.clientsConnected.Add(-1)
	if len(orphans) > 0 {
		b.redeliverShared(s, orphans)
	}

	// [MQTT-3.1.2-8] the will is published when the connection ends without
	// a DISCONNECT: a network error, a keep-alive timeout, a protocol
	// violation, or a takeover (or MQTT 5's "disconnect with will"). Not
	// when the broker itself is going down.
	if c.will != nil && (!c.graceful || c.keepWill) && !c.stopping.Load() {
		info := c.info // a copy: &c.info would pin the whole client for the will delay
		b.scheduleWill(s, &clientWill{msg: c.will, client: &info}, c.willDelay)
	}
	b.saveOffline(s)
	reason := "disconnect"
	if cause != nil {
		reason = cause.Error()
	}
	b.log.Info("client disconnected", "client_id", c.info.ClientID, "username", c.info.Username,
		"remote", c.info.RemoteAddr, "listener", c.info.Listener, "protocol", int(c.info.ProtocolVersion), "reason", reason)
	b.emit(&Event{Type: EventClientDisconnected, Client: &c.info, Reason: reason})
}

// disconnectCode is the reason an MQTT 5 client is told when the broker
// ends its connection ([MQTT5-4.13.1-1]); 0 when it is not told (3.1.1, the
// client left, or the network went away).
func (c *client) disconnectCode(cause error) packets.ReasonCode {
	if c.version != packets.V5 || cause == nil {
		return 0
	}
	var pe *protoError
	var ce *packets.Error
	switch {
	case c.stopping.Load():
		return packets.ServerShuttingDown
	case c.takenOver.Load():
		return packets.SessionTakenOver
	case c.kicked.Load():
		return packets.AdministrativeAction
	case errors.Is(cause, errKeepAlive):
		return packets.KeepAliveTimeout
	case errors.Is(cause, errPacketTooLarge):
		return packets.PacketTooLarge
	case errors.As(cause, &pe):
		return pe.Code
	case errors.As(cause, &ce):
		return ce.Code
	}
	return 0
}
