package mqtt

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// secRSS is the process's resident set size in bytes (Linux), or 0.
func secRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// secHeap is the heap in use after a collection.
func secHeap() (heap, stack uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// Sockets that announce a 1 MiB CONNECT and then send nothing hold only
// what they sent plus a small chunk, not the announced size: a thousand of
// them cannot take a gigabyte. The pre-authentication bound is raised to
// 1 MiB here so the sockets stay open and what is measured is the reader's
// growth; the bound asserted is generous (16 KiB of heap per socket, against
// 1 MiB without the fix) and the figures measured are logged.
// MQTTD_PREAUTH_SOCKETS sets the number of sockets (default 200).
func TestPreAuthSocketsHoldLittleMemory(t *testing.T) {
	n := 200
	if s := os.Getenv("MQTTD_PREAUTH_SOCKETS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	tb := startBroker(t, func(o *Options) {
		o.Limits.ConnectTimeout = time.Minute
		o.Limits.MaxConnectSize = 1 << 20
	})
	hdr := secConnectHeader(1<<20 - 8)

	heap0, stack0 := secHeap()
	rss0 := secRSS()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", tb.addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		if _, err := c.Write(hdr); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// The broker counts bytes in before its next read: once all are
	// counted, every socket's buffer is what it is going to be.
	waitFor(t, "every socket's bytes read", func() bool { return tb.Stats().BytesIn >= int64(n*len(hdr)) })
	heap1, stack1 := secHeap()
	rss1 := secRSS()
	perHeap := (int64(heap1) - int64(heap0)) / int64(n)
	perStack := (int64(stack1) - int64(stack0)) / int64(n)
	perRSS := (rss1 - rss0) / int64(n)
	t.Logf("%d pre-auth sockets announcing 1 MiB: heap %+d B/socket, stacks %+d B/socket, RSS %+d B/socket (RSS %d → %d MiB)",
		n, perHeap, perStack, perRSS, rss0>>20, rss1>>20)
	if perHeap > 16<<10 {
		t.Fatalf("each pre-auth socket holds %d bytes of heap; want < 16 KiB", perHeap)
	}
}

// secConnectHeader is the start of an MQTT 5 CONNECT that announces
// remaining bytes: its fixed header and the first bytes of its variable
// header.
func secConnectHeader(remaining int) []byte {
	hdr := packets.AppendFixedHeader(nil, packets.FixedHeader{Type: packets.CONNECT, Remaining: remaining})
	return append(hdr, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02)
}

// With the default bound (limits.max-connect-size, 64 KiB) a CONNECT that
// announces 1 MiB is refused at once: an MQTT 5 client hears 0x95 (packet
// too large) and is closed, and the refusal is recorded.
func TestOversizedConnectRefused(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRawV5(t, tb.addr)
	c.write(secConnectHeader(1<<20 - 8))
	c.expectConnackClose(packets.PacketTooLarge)
	if refs := tb.RecentRefusals(); len(refs) != 1 || refs[0].ReasonCode != byte(packets.PacketTooLarge) || refs[0].Protocol != 5 {
		t.Fatalf("refusals %+v", refs)
	}
	// Under the bound the CONNECT is read in full as it arrives (here 40 KiB
	// of it, a valid one with a large user property) and accepted.
	ok := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "big-connect", CleanStart: true, KeepAlive: 60}
	p.Props.User = []packets.UserProperty{{Key: "blob", Value: strings.Repeat("b", 40<<10)}}
	if ack := ok.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("a 40 KiB CONNECT: CONNACK %v", ack.ReasonCode)
	}
}

// A topic alias is stored only once its PUBLISH is allowed: a denied
// publish that sets an alias leaves it unset, so using it afterwards is
// a protocol error (the alias was never set), not a way to fill memory.
// A denied publish that re-maps an alias unsets it too: the client believes
// the alias names the denied topic, so a publish by alias alone must not
// go to the topic it named before.
func TestTopicAliasNotStoredForDeniedPublish(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Hooks.Topics = denyUserTopics("mallory", ActionPublish, "deny/") })
	c := connectAs(t, tb.addr, packets.V5, &packets.Connect{ClientID: "alias", CleanStart: true}, "mallory")
	c.send(v5AliasPub("deny/"+strings.Repeat("x", 1000), 1, 1, "a"))
	if ack := c.expect(packets.PUBACK, 1).(*packets.Puback); ack.ReasonCode != packets.NotAuthorized {
		t.Fatalf("denied publish: PUBACK %v", ack.ReasonCode)
	}
	c.send(v5AliasPub("", 1, 2, "b"))
	c.expectDisconnect(packets.ProtocolError)

	watch := connectAs(t, tb.addr, packets.V311, &packets.Connect{ClientID: "alias-watch", CleanStart: true}, "ops")
	watch.subscribe(1, "open/#", 1)
	c = connectAs(t, tb.addr, packets.V5, &packets.Connect{ClientID: "alias", CleanStart: true}, "mallory")
	c.send(v5AliasPub("open/door", 2, 1, "allowed"))
	c.expect(packets.PUBACK, 1)
	if got := watch.nextPayload(2 * time.Second); got != "allowed" {
		t.Fatalf("watcher got %q", got)
	}
	c.send(v5AliasPub("deny/door", 2, 2, "denied"))
	c.expect(packets.PUBACK, 2)
	c.send(v5AliasPub("", 2, 3, "meant for deny/door"))
	c.expectDisconnect(packets.ProtocolError)
	watch.expectNothing(300 * time.Millisecond)
}

// A persistent session's offline queue is bounded in bytes as well as in
// messages: 300 QoS 1 messages of 64 KiB (19 MiB) to an offline session
// keep at most the default byte bound (16 MiB) and count the rest as
// queue-full drops.
func TestOfflineQueueBoundedInBytes(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("queue-bytes", false)
	sub.subscribe(1, "bulk/#", 1)
	sub.disconnect()
	waitFor(t, "the session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("queue-bytes-pub", true)
	payload := bytes.Repeat([]byte{'p'}, 64<<10)
	const sent = 300
	for i := range sent {
		pub.send(&packets.Publish{Topic: fmt.Sprintf("bulk/%d", i), Payload: payload, QoS: 1, PacketID: uint16(i + 1)})
		pub.expect(packets.PUBACK, uint16(i+1))
	}
	st := tb.Stats()
	if max := int64(16<<20) / int64(len(payload)); st.Queued > max || st.Queued+st.DroppedQueueFull != sent {
		t.Fatalf("queued %d (at most %d fit in 16 MiB), dropped %d, sent %d", st.Queued, max, st.DroppedQueueFull, sent)
	}
}
