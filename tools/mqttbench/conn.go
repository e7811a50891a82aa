package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// readBufSize is the initial read buffer per connection. A subscriber that
// fell behind gets many small PUBLISH packets per read; a large buffer lets
// one read() drain them, which is what a well-behaved client does and keeps
// the load generator's syscall count per message low.
const readBufSize = 64 << 10

// mconn is one MQTT connection: a socket, a reused read buffer and a
// reused buffer of pending acknowledgements. Only its reader goroutine
// touches buf and out after the handshake.
type mconn struct {
	c   net.Conn
	buf []byte
	end int    // valid bytes in buf
	out []byte // acks to send once the read buffer is drained
	v5  bool   // MQTT 5.0 framing; else 3.1.1
	lim serverLimits
}

var errClosedByBroker = errors.New("connection closed by broker")

// dialMQTT opens a TCP connection and completes CONNECT/CONNACK. bufSize
// is the read buffer: readBufSize for load, tiny for idle connections,
// where thousands of 64 KiB buffers would only inflate our own memory.
func dialMQTT(addr string, o connectOptions, timeout time.Duration, bufSize int) (*mconn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	m := &mconn{c: c, buf: make([]byte, bufSize), out: make([]byte, 0, min(bufSize, 4096)), v5: o.v5, lim: defaultLimits}
	if err := m.connect(o, timeout); err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

// connect sends CONNECT and waits for CONNACK [MQTT-3.2.0-1: the first
// packet from the server is CONNACK]. In 5.0 it also takes the limits the
// CONNACK imposes on this client into m.lim.
func (m *mconn) connect(o connectOptions, timeout time.Duration) error {
	code, err := m.handshake(o, timeout)
	if err != nil {
		return err
	}
	if code == 0 {
		return nil
	}
	if !m.v5 {
		return fmt.Errorf("%s: CONNACK return code %d (refused)", o.clientID, code)
	}
	return fmt.Errorf("%s: CONNACK reason code 0x%02x (refused)", o.clientID, code)
}

// handshake sends CONNECT and reads the CONNACK. err is a transport or
// protocol failure (no valid CONNACK); otherwise code is the CONNACK's
// return code (3.1.1) or reason code (5.0), 0 when accepted.
func (m *mconn) handshake(o connectOptions, timeout time.Duration) (code byte, err error) {
	m.c.SetDeadline(time.Now().Add(timeout))
	defer m.c.SetDeadline(time.Time{})
	pkt := appendConnect(nil, o)
	if m.v5 {
		pkt = appendConnect5(nil, o)
	}
	if _, err := m.c.Write(pkt); err != nil {
		return 0, fmt.Errorf("%s: write CONNECT: %w", o.clientID, err)
	}
	typ, _, body, err := m.next()
	if err != nil {
		return 0, fmt.Errorf("%s: waiting for CONNACK: %w", o.clientID, err)
	}
	if typ != typeConnack {
		return 0, fmt.Errorf("%s: expected CONNACK, got packet type %d", o.clientID, typ)
	}
	if !m.v5 {
		_, code, err := parseConnack(body)
		if err != nil {
			return 0, fmt.Errorf("%s: CONNACK: %w", o.clientID, err)
		}
		return code, nil
	}
	_, reason, lim, err := parseConnack5(body)
	if err != nil {
		return 0, fmt.Errorf("%s: CONNACK: %w", o.clientID, err)
	}
	if reason == 0x01 && len(body) == 2 {
		return 0, fmt.Errorf("%s: CONNACK return code 1 in the 3.1.1 format: the broker does not accept MQTT 5.0", o.clientID)
	}
	if reason == reasonSuccess {
		m.lim = lim
	}
	return reason, nil
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK; the broker may
// not send anything else first because nothing has been published to this
// fresh clean session yet.
func (m *mconn) subscribe(filter string, qos byte, timeout time.Duration) error {
	m.c.SetDeadline(time.Now().Add(timeout))
	defer m.c.SetDeadline(time.Time{})
	// 5.0 subscription options: the QoS and nothing else (No Local off,
	// Retain As Published off, Retain Handling 0), which is what a 3.1.1
	// subscription means.
	pkt := appendSubscribe(nil, 1, filter, qos)
	if m.v5 {
		pkt = appendSubscribe5(nil, 1, filter, qos)
	}
	if _, err := m.c.Write(pkt); err != nil {
		return fmt.Errorf("write SUBSCRIBE: %w", err)
	}
	typ, _, body, err := m.next()
	if err != nil {
		return fmt.Errorf("waiting for SUBACK: %w", err)
	}
	if typ != typeSuback {
		return fmt.Errorf("expected SUBACK, got packet type %d", typ)
	}
	var id uint16
	var codes []byte
	if m.v5 {
		id, codes, err = parseSuback5(body)
	} else {
		id, codes, err = parseSuback(body)
	}
	if err != nil {
		return fmt.Errorf("SUBACK: %w", err)
	}
	if id != 1 || len(codes) != 1 {
		return fmt.Errorf("SUBACK for id %d with %d codes, want id 1 with 1", id, len(codes))
	}
	if codes[0] >= reasonFailure {
		return fmt.Errorf("SUBACK refused filter %q (code 0x%02x)", filter, codes[0])
	}
	if codes[0] != qos {
		return fmt.Errorf("SUBACK granted QoS %d, asked %d", codes[0], qos)
	}
	return nil
}

// disconnect is the DISCONNECT this connection says goodbye with: 5.0
// with reason code 0x00, normal disconnection (the will, if any, is
// discarded, as in 3.1.1).
func (m *mconn) disconnect() []byte {
	if m.v5 {
		return appendDisconnect5(nil, reasonSuccess)
	}
	return appendDisconnect(nil)
}

// next returns one whole packet during the handshake, reading as needed.
// body aliases m.buf and is valid until the next read.
func (m *mconn) next() (typ, flags byte, body []byte, err error) {
	for {
		t, f, b, n, _, err := parsePacket(m.buf[:m.end])
		if err != nil {
			return 0, 0, nil, err
		}
		if n > 0 {
			// Keep any bytes after this packet for the read loop. The
			// handshake packets are tiny, so copying them out first is
			// cheap and keeps body valid after the shift.
			body = append([]byte(nil), b...)
			copy(m.buf, m.buf[n:m.end])
			m.end -= n
			return t, f, body, nil
		}
		if m.end == len(m.buf) {
			return 0, 0, nil, errors.New("handshake packet larger than the read buffer")
		}
		r, err := m.c.Read(m.buf[m.end:])
		m.end += r
		if err != nil {
			if err == io.EOF {
				err = errClosedByBroker
			}
			return 0, 0, nil, err
		}
	}
}

// readLoop reads until the connection fails or is closed, calling handle
// for every complete packet. handle may append acknowledgements to m.out;
// they are written in one write once every complete packet in the buffer
// has been handled, i.e. just before the next blocking read. now is the
// time the read returned, taken once per read because every packet in it
// arrived by then.
func (m *mconn) readLoop(handle func(typ, flags byte, body []byte, now int64) error, clock func() int64) error {
	for {
		if m.end == len(m.buf) {
			// Cannot happen: partial packets are moved to the front and
			// the buffer grows below when one packet is larger than it.
			// Kept so that a bug here fails loudly instead of spinning.
			return errors.New("read buffer full without a complete packet")
		}
		r, err := m.c.Read(m.buf[m.end:])
		m.end += r
		now := clock()
		off := 0
		for off < m.end {
			typ, flags, body, n, need, perr := parsePacket(m.buf[off:m.end])
			if perr != nil {
				return perr
			}
			if n == 0 {
				if need > len(m.buf) {
					// A packet larger than the buffer: rare (the
					// benchmark's own messages are small), so allocate.
					nb := make([]byte, need+readBufSize)
					copy(nb, m.buf[off:m.end])
					m.end -= off
					off = 0
					m.buf = nb
				}
				break
			}
			if herr := handle(typ, flags, body, now); herr != nil {
				return herr
			}
			off += n
		}
		if off > 0 {
			copy(m.buf, m.buf[off:m.end])
			m.end -= off
		}
		if len(m.out) > 0 {
			if _, werr := m.c.Write(m.out); werr != nil {
				return werr
			}
			m.out = m.out[:0]
		}
		if err != nil {
			if err == io.EOF {
				return errors.New("connection closed by broker")
			}
			return err
		}
	}
}
