package mqtt

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// An idle connection holds at most one goroutine whose stack never grew
// past the minimum (none on Linux, where it parks on its listener's
// poller): after CONNECT the reader parks at once (the CONNACK starts no
// writer), and after traffic it parks again once it has waited
// readerLinger. Without parking and with a writer per CONNACK, stacks came
// to 4 KiB per connection.
// The heap per connection is logged; the stack bound is not checked
// under the race detector, whose frames are larger. MQTTD_IDLE_CONNS sets the number of
// connections (default 1000).
func TestIdleConnectionMemory(t *testing.T) {
	n := 1000
	if s := os.Getenv("MQTTD_IDLE_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	tb := startBroker(t, func(o *Options) { o.readerLinger = 100 * time.Millisecond })
	heap0, stack0 := secHeap()
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", tb.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		p := &packets.Connect{CleanStart: true, KeepAlive: 300, ClientID: fmt.Sprintf("idle-%d", i)}
		raw, _ := p.Append(nil, packets.V311)
		c.Write(raw)
		expectBytes(t, c, 0x20, 2, 0, 0)
	}
	waitFor(t, "one goroutine per connection", func() bool { return runtime.NumGoroutine() <= g0+n })
	heap1, stack1 := secHeap()
	perStack := (int64(stack1) - int64(stack0)) / int64(n)
	t.Logf("%d idle connections: heap %+d B/conn (client sockets included), stacks %+d B/conn",
		n, (int64(heap1)-int64(heap0))/int64(n), perStack)
	if perStack > 3<<10 && !raceEnabled {
		t.Fatalf("idle connections hold %d B of stack each; want the minimum (2 KiB)", perStack)
	}
	waitFor(t, "every reader parked", func() bool { return parkedReaders(tb.Broker) == n })

	// Busy once (a PINGREQ handled, a writer started), each reader parks
	// again and still wakes for the next packet.
	ping, _ := (&packets.Pingreq{}).Append(nil, packets.V311)
	for _, c := range conns {
		c.Write(ping)
		expectBytes(t, c, 0xd0, 0)
	}
	waitFor(t, "every reader parked again", func() bool { return parkedReaders(tb.Broker) == n })
	for _, c := range conns[:min(n, 20)] {
		c.Write(ping)
		expectBytes(t, c, 0xd0, 0)
	}
}

// parkedReaders counts the parked connections: on their listeners'
// pollers, or goroutines waiting in awaitReadable.
func parkedReaders(b *Broker) int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := bytes.Count(buf, []byte("mqtt.awaitReadable("))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		if l.poller != nil {
			n += l.poller.count()
		}
	}
	return n
}

// expectBytes reads exactly len(want) bytes from c and fails unless they
// are want.
func expectBytes(t *testing.T, c net.Conn, want ...byte) {
	t.Helper()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for read := 0; read < len(got); {
		k, err := c.Read(got[read:])
		if err != nil {
			t.Fatalf("read: %v (got % x, want % x)", err, got[:read], want)
		}
		read += k
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}
