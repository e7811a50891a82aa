package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// benchBroker is a broker with n subscribers on topic, each attached to an
// in-memory client whose write buffer the benchmark drains: it measures the
// publish path from decoded bytes to encoded deliveries, without sockets.
func benchBroker(b testing.TB, nsubs int, filter string, subQoS byte) (*Broker, *client, []*client) {
	b.Helper()
	br, err := New(Options{Limits: Limits{MaxInflight: 65535, MaxOutboundBytes: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	attach := func(id string) *client {
		c := &client{b: br, version: packets.V311, closed: true, ctx: context.Background()} // closed: no writer goroutine
		c.info.ClientID = id
		s := newSession(id, true)
		s.window = br.limits.MaxInflight
		s.client = c
		c.sess = s
		br.store.Put(s)
		return c
	}
	subs := make([]*client, nsubs)
	for i := range subs {
		subs[i] = attach(fmt.Sprintf("sub-%d", i))
		subs[i].sess.subs[filter] = subscription{qos: subQoS}
		br.subs.Subscribe(filter, subs[i].sess, subscription{qos: subQoS})
	}
	return br, attach("pub"), subs
}

// drain empties the subscribers' buffers and acknowledges their inflight
// messages, as their writers and readers would.
func drain(subs []*client) {
	for _, c := range subs {
		s := c.sess
		c.out = c.out[:0]
		for s.inflight.live > 0 {
			e := &s.inflight.ents[s.inflight.head]
			s.inflight.done(e)
		}
	}
}

func BenchmarkPublishPath(b *testing.B) {
	for _, bc := range []struct {
		name   string
		nsubs  int
		filter string
		qos    byte
		alias  int  // MQTT 5 subscribers that accept this many topic aliases; -1: MQTT 5, none; 0: 3.1.1
		kept   bool // persistent subscriber sessions: their window keeps a copy of each message
	}{
		{"qos0/1sub", 1, "bench/t", 0, 0, false},
		{"qos0/1sub-wildcard", 1, "bench/+", 0, 0, false},
		{"qos0/100subs", 100, "bench/#", 0, 0, false},
		{"qos0/100subs-v5", 100, "bench/#", 0, -1, false},
		{"qos0/100subs-v5-alias", 100, "bench/#", 0, 10, false},
		{"qos1/1sub", 1, "bench/t", 1, 0, false},
		{"qos1/100subs", 100, "bench/t", 1, 0, false},
		{"qos1/1sub-persistent", 1, "bench/t", 1, 0, true},
		{"qos1/100subs-persistent", 100, "bench/t", 1, 0, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, pub, subs := benchBroker(b, bc.nsubs, bc.filter, bc.qos)
			for _, c := range subs {
				if bc.alias != 0 {
					c.version, c.aliasMax = packets.V5, uint16(max(bc.alias, 0))
				}
				c.sess.clean = !bc.kept
			}
			pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64), QoS: bc.qos, PacketID: 1}
			raw, _ := pk.Append(nil, packets.V311)
			fh, n, _ := packets.DecodeFixedHeader(raw)
			body := raw[n:]
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := pub.handle(fh, body); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					pub.out = pub.out[:0]
					drain(subs)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.nsubs), "ns/delivery")
		})
	}
}

// chunkConn is a net.Conn whose every Read returns the same chunk of
// packets, as a busy publisher's socket would; it counts the read
// deadlines set on it.
type chunkConn struct {
	net.Conn
	chunk     []byte
	pos       int
	deadlines int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	n := copy(p, c.chunk[c.pos:])
	c.pos = (c.pos + n) % len(c.chunk)
	return n, nil
}

func (c *chunkConn) SetReadDeadline(time.Time) error { c.deadlines++; return nil }

// BenchmarkReadPath frames PUBLISH packets out of a connection the way the
// connected reader does (beforeRead included), 1 or 16 packets per read:
// allocations per packet, and read deadlines set per read (armed lazily:
// none after the first, where each read used to move it).
func BenchmarkReadPath(b *testing.B) {
	for _, perRead := range []int{1, 16} {
		b.Run(fmt.Sprintf("%d-per-read", perRead), func(b *testing.B) {
			br, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64)}
			raw, _ := pk.Append(nil, packets.V311)
			conn := &chunkConn{chunk: bytes.Repeat(raw, perRead)}
			c := &client{b: br, conn: conn, keepAlive: time.Minute, sess: newSession("r", true)}
			c.r = packetReader{conn: conn, max: 1 << 20, beforeRead: c.beforeRead}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := c.r.next(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reads := float64(b.N) / float64(perRead)
			b.ReportMetric(float64(conn.deadlines)/reads, "deadlines/read")
		})
	}
}

// discardConn is a net.Conn that takes every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkWriterFlush is a subscriber's writer catching up with bursts of
// 64 deliveries (about 5 KiB): while it runs it keeps its two buffers, so a
// burst costs no allocation (it used to drop a buffer above 4 KiB each time
// it found the queue empty, and grew it again for the next burst).
func BenchmarkWriterFlush(b *testing.B) {
	br, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := &client{b: br, conn: discardConn{}, version: packets.V311, writing: true}
	c.sess = newSession("w", true)
	c.sess.client = c
	pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64)}
	raw, _ := pk.Append(nil, packets.V311)
	b.ReportAllocs()
	b.SetBytes(int64(64 * len(raw)))
	for range b.N {
		c.sess.mu.Lock()
		for range 64 {
			c.out = append(c.out, raw...)
			c.outPkts++
		}
		c.sess.mu.Unlock()
		if _, more := c.flush(true, false); !more {
			b.Fatal("flush failed")
		}
	}
}

// BenchmarkInlineFlush is a publisher's reader ending a read batch: the 16
// deliveries it appended for a subscriber with no writer running go out
// from the reader itself, in one non-blocking write on a loopback socket
// (wakeByLocked, flushOwed), with no writer goroutine woken and nothing
// allocated once the connection's inline writer is made.
func BenchmarkInlineFlush(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		peer, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, peer)
		peer.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	sub := &client{b: br, conn: conn, version: packets.V311, wake: make(chan struct{}, 1), inlineOK: true}
	sub.sess = newSession("sub", true)
	sub.sess.client = sub
	pub := &client{b: br}
	pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64)}
	raw, _ := pk.Append(nil, packets.V311)
	handedOver := 0
	b.ReportAllocs()
	b.SetBytes(int64(16 * len(raw)))
	for range b.N {
		sub.sess.mu.Lock()
		for range 16 {
			sub.out = append(sub.out, raw...)
			sub.outPkts++
			sub.wakeByLocked(pub)
		}
		sub.sess.mu.Unlock()
		pub.flushOwed()
		sub.sess.mu.Lock()
		if sub.writing { // the socket was full: a writer took the rest
			handedOver++
			sub.sess.mu.Unlock()
			for {
				sub.sess.mu.Lock()
				w := sub.writing
				sub.sess.mu.Unlock()
				if !w {
					break
				}
				time.Sleep(time.Millisecond)
			}
			continue
		}
		sub.sess.mu.Unlock()
	}
	b.StopTimer()
	b.ReportMetric(float64(handedOver)/float64(b.N), "handovers/op")
}
