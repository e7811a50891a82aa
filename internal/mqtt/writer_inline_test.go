package mqtt

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A publisher's reader writes its subscriber's deliveries itself; when the
// subscriber does not read, those writes stop short and a writer goroutine
// takes the rest over. Nothing may be lost or reordered on the way: the
// subscriber, once it reads, gets every message in order.
func TestInlineWriteHandsOverToWriter(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.conn.(*net.TCPConn).SetReadBuffer(64 << 10) // fills after a few messages
	sub.mustConnect("inline-sub", true)
	sub.subscribe(1, "inline/t", 1)

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("inline-pub", true)
	// The SUBACK's writer lingers a second: until it has gone, deliveries
	// are its to write, not the publisher's reader's.
	waitFor(t, "the subscriber's writer to exit", func() bool {
		s, ok := tb.store.Get("inline-sub")
		if !ok {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.client != nil && !s.client.writing
	})
	const n, size = 400, 16 << 10 // 6.4 MB: more than the loopback socket buffers take
	payload := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		// The publisher pipelines its messages without waiting: its reader
		// then routes many per read batch.
		for i := range n {
			binary.BigEndian.PutUint32(payload, uint32(i))
			b, _ := (&packets.Publish{Topic: "inline/t", Payload: payload, QoS: 1, PacketID: uint16(i + 1)}).Append(nil, packets.V311)
			pub.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := pub.conn.Write(b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		pub.expect(packets.PUBACK, uint16(i+1)) // routed: in the subscriber's window
	}
	if err := <-done; err != nil {
		t.Fatalf("publish: %v", err)
	}
	for i := range n {
		p := sub.expectPublish(10 * time.Second)
		if got := binary.BigEndian.Uint32(p.Payload); got != uint32(i) || len(p.Payload) != size {
			t.Fatalf("delivery %d carries message %d (%d bytes)", i, got, len(p.Payload))
		}
		sub.ack(p)
	}
	sub.expectNothing(100 * time.Millisecond)
}
