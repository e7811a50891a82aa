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
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// client is one network connection from CONNECT to close. Its reader
// goroutine decodes and handles inbound packets (so a slow hook delays only
// this client); its writer goroutine flushes everything queued for it in as
// few write syscalls as possible.
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
	pub             *packets.Publish
	matches         []match
	pktsIn          int64
	msgsIn          int64
	keepAlive       time.Duration
	connectDeadline time.Time
	will            *Message
	graceful        bool // DISCONNECT received: the will is discarded

	// Guarded by sess.mu once the session is attached.
	out, spare  []byte
	outMsgs     int64
	outPkts     int64
	wakePending bool

	wake       chan struct{}
	stop       chan struct{} // closed to make the writer flush and exit
	stopOnce   sync.Once
	writerDone chan struct{}
	stopping   atomic.Bool // the broker is closing this connection
	takenOver  atomic.Bool
}

func (b *Broker) serveConn(conn net.Conn, l *listener) {
	c := &client{
		b:          b,
		conn:       conn,
		l:          l,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.info.Listener = l.name
	c.info.Transport = l.transport
	c.info.RemoteAddr = conn.RemoteAddr().String()
	c.ctx, c.cancel = context.WithCancel(b.ctx)
	c.r = packetReader{conn: conn, max: b.limits.MaxPacketSize, beforeRead: c.beforeRead}

	b.mu.Lock()
	b.conns[c] = struct{}{}
	if b.closing.Load() {
		c.shutdown() // admitted just before Close walked b.conns
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	defer c.cancel()

	if tc, ok := conn.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(b.limits.ConnectTimeout))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			b.log.Debug("tls handshake failed", "remote", c.info.RemoteAddr, "err", err)
			conn.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			c.info.PeerCerts = st.PeerCertificates
		}
	}
	if err := c.handshake(); err != nil {
		b.log.Debug("connection refused", "remote", c.info.RemoteAddr, "err", err)
		b.flushReadStats(c)
		conn.Close()
		return
	}
	go c.writeLoop()
	err := c.readLoop()
	c.finish(err)
}

// beforeRead runs before every blocking read: it flushes the batch's
// counters and arms the keep-alive deadline ([MQTT-3.1.2-24]: 1.5 times the
// keep alive without a packet closes the connection).
func (c *client) beforeRead() error {
	c.b.flushReadStats(c)
	d := c.connectDeadline // until CONNECT is accepted
	if c.sess != nil {
		d = time.Time{}
	}
	if c.sess != nil && c.keepAlive > 0 {
		d = time.Now().Add(c.keepAlive + c.keepAlive/2)
	}
	c.conn.SetReadDeadline(d)
	if c.stopping.Load() {
		return errServerClosing
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
			return c.readError(err)
		}
		c.pktsIn++
		if err := c.handle(fh, body); err != nil {
			c.b.stats.malformed.Add(1) // every handler error is a protocol violation
			return err
		}
		if c.graceful {
			return nil
		}
	}
}

// readError names why the read side ended.
func (c *client) readError(err error) error {
	switch {
	case c.stopping.Load():
		return errServerClosing
	case c.takenOver.Load():
		return errTakenOver
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

// kickLocked wakes the writer at most once per flush. Caller holds sess.mu.
func (c *client) kickLocked() {
	if !c.wakePending {
		c.wakePending = true
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *client) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case <-c.wake:
			if !c.flush() {
				return
			}
		case <-c.stop:
			c.flush()
			return
		}
	}
}

// flush writes everything queued, one syscall per batch, until the buffer
// is found empty. It reports false after a write error.
func (c *client) flush() bool {
	s := c.sess
	checked := c.b.hooks.Topics != nil
	for {
		if checked {
			c.pumpChecked()
		}
		s.mu.Lock()
		if len(c.out) == 0 && !(checked && s.client == c && c.b.pumpable(s)) {
			c.wakePending = false
			s.mu.Unlock()
			return true
		}
		buf := c.out
		c.out = c.spare[:0]
		msgs, pkts := c.outMsgs, c.outPkts
		c.outMsgs, c.outPkts = 0, 0
		s.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		c.conn.SetWriteDeadline(time.Now().Add(c.b.limits.WriteTimeout))
		n, err := c.conn.Write(buf)
		c.b.stats.bytesOut.Add(int64(n))
		c.b.stats.msgsOut.Add(msgs)
		c.b.stats.pktsOut.Add(pkts)
		if err != nil {
			c.conn.Close() // the reader sees it and ends the connection
			return false
		}
		if cap(buf) > 256<<10 {
			buf = nil // do not pin a burst's memory
		}
		c.spare = buf[:0]
	}
}

// finish tears the connection down: stops the writer, detaches (or discards)
// the session, publishes the will when the end was abnormal.
func (c *client) finish(cause error) {
	b := c.b
	if c.stopping.Load() {
		// Shutdown: give the writer the chance to flush what is queued.
		c.stopOnce.Do(func() { close(c.stop) })
		<-c.writerDone
		c.conn.Close()
	} else {
		c.conn.Close()
		c.stopOnce.Do(func() { close(c.stop) })
		<-c.writerDone
	}
	c.cancel()
	b.flushReadStats(c)

	b.connMu.Lock()
	s := c.sess
	s.mu.Lock()
	attached := s.client == c
	if attached {
		s.client = nil
		s.offlineSince = time.Now()
	}
	s.mu.Unlock()
	if attached && s.clean {
		b.discardSession(s)
	}
	b.connMu.Unlock()
	b.stats.clientsConnected.Add(-1)

	// [MQTT-3.1.2-8] the will is published when the connection ends without
	// a DISCONNECT: a network error, a keep-alive timeout, a protocol
	// violation, or a takeover. Not when the broker itself is going down.
	if c.will != nil && !c.graceful && !c.stopping.Load() {
		b.publishWill(c.will)
	}
	reason := "disconnect"
	if cause != nil {
		reason = cause.Error()
	}
	b.log.Debug("client disconnected", "client_id", c.info.ClientID, "reason", reason)
	b.emit(&Event{Type: EventClientDisconnected, Client: &c.info, Reason: reason})
}
