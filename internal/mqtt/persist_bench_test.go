package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// BenchmarkPersistentQoS1 is 10 publishers → 10 persistent subscribers at
// QoS 1 over loopback sockets, every publisher keeping up to 64 messages
// unacknowledged (so commits can share an fsync), every subscriber
// acknowledging as it reads. One op is one PUBLISH acknowledged to its
// publisher; the run ends when every subscriber has every message. Modes:
// no store (nothing persisted), memstore, pebblestore with durability sync.
func BenchmarkPersistentQoS1(b *testing.B) {
	for _, mode := range []string{"nostore", "memstore", "pebble-sync"} {
		b.Run(mode, func(b *testing.B) {
			var st store.Store
			switch mode {
			case "memstore":
				st = memstore.New()
			case "pebble-sync":
				ps, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: store.Sync})
				if err != nil {
					b.Fatal(err)
				}
				st = ps
			}
			benchPersistent(b, st, 10, 10, 64, false)
		})
	}
}

// BenchmarkPersistentQoS1Pairs is BenchmarkPersistentQoS1 with one
// subscriber per publisher (publisher i to bench/i, subscribed by
// subscriber i only), 256 in flight each: the shape of
// scripts/persist-bench.sh's qos1-pers case, where what a message costs
// the store weighs as much as what a delivery does.
func BenchmarkPersistentQoS1Pairs(b *testing.B) {
	for _, mode := range []string{"memstore", "pebble-sync"} {
		b.Run(mode, func(b *testing.B) {
			var st store.Store = memstore.New()
			if mode == "pebble-sync" {
				ps, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: store.Sync})
				if err != nil {
					b.Fatal(err)
				}
				st = ps
			}
			benchPersistent(b, st, 10, 10, 256, true)
		})
	}
}

// benchPersistent runs npubs publishers and nsubs persistent subscribers;
// with pairs, publisher i publishes to bench/i and only subscriber i
// subscribes to it (npubs == nsubs), else every subscriber has bench/#.
func benchPersistent(b *testing.B, st store.Store, npubs, nsubs, window int, pairs bool) {
	br, err := New(Options{
		Listeners:   []ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
		Store:       st,
		Limits:      Limits{MaxInflight: 1000, MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	addr := br.Addr("tcp").String()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		br.Close(ctx)
		if st != nil {
			st.Close()
		}
	}()

	total := int64(b.N)
	perMsg := int64(nsubs) // deliveries of each message
	if pairs {
		perMsg = 1
	}
	var delivered atomic.Int64
	allIn := make(chan struct{})
	var subsWG sync.WaitGroup
	for i := range nsubs {
		conn := benchDial(b, addr, fmt.Sprintf("bsub-%d", i), false)
		filter := "bench/#"
		if pairs {
			filter = fmt.Sprintf("bench/%d", i)
		}
		benchWrite(b, conn, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: filter, QoS: 1}}})
		r := bufio.NewReader(conn)
		if p, err := packets.ReadPacket(r, packets.V311, 1<<20); err != nil || p.Type() != packets.SUBACK {
			b.Fatalf("SUBACK: %v %v", p, err)
		}
		subsWG.Add(1)
		go func() {
			defer subsWG.Done()
			defer conn.Close()
			w := bufio.NewWriter(conn)
			for {
				p, err := packets.ReadPacket(r, packets.V311, 1<<20)
				if err != nil {
					return
				}
				if pub, ok := p.(*packets.Publish); ok {
					ack, _ := (&packets.Puback{PacketID: pub.PacketID}).Append(nil, packets.V311)
					w.Write(ack)
					if delivered.Add(1) == total*perMsg {
						close(allIn)
					}
				}
				if r.Buffered() == 0 {
					w.Flush()
				}
			}
		}()
	}

	payload := make([]byte, 64)
	var pubsWG sync.WaitGroup
	lat := make([][]time.Duration, npubs) // publish-to-PUBACK, per publisher
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range npubs {
		n := int(total) / npubs
		if i < int(total)%npubs {
			n++
		}
		conn := benchDial(b, addr, fmt.Sprintf("bpub-%d", i), true)
		pubsWG.Add(1)
		go func() {
			defer pubsWG.Done()
			defer conn.Close()
			topic := "bench/t"
			if pairs {
				topic = fmt.Sprintf("bench/%d", i)
			}
			lat[i] = benchPublisher(conn, topic, n, window, payload)
		}()
	}
	pubsWG.Wait()
	acked := time.Since(start)
	if total > 0 {
		select {
		case <-allIn:
		case <-time.After(60 * time.Second):
			b.Fatalf("delivered %d of %d", delivered.Load(), total*perMsg)
		}
	}
	b.StopTimer()
	if all := slices.Concat(lat...); len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-puback-µs")
	}
	b.ReportMetric(float64(total)/acked.Seconds(), "acked-msgs/s")
	if k, ok := st.(interface{ KeysWritten() uint64 }); ok && total > 0 {
		br.Close(context.Background()) // the writes held back are written at close
		b.ReportMetric(float64(k.KeysWritten())/float64(total), "keys/msg")
	}
	b.ReportMetric(float64(total*perMsg)/time.Since(start).Seconds(), "deliveries/s")
}

// benchPublisher sends n QoS 1 messages on conn keeping up to window
// unacknowledged, and returns each one's time from leaving the client (the
// flush that sent it) to its PUBACK. Acknowledgements come in order.
func benchPublisher(conn net.Conn, topic string, n, window int, payload []byte) []time.Duration {
	sent := make([]int64, n) // when each message was flushed, in ns since start
	lat := make([]time.Duration, 0, n)
	t0 := time.Now()
	var flushed atomic.Int64 // messages flushed so far: sent[:flushed] are set
	slots := make(chan struct{}, window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(conn)
		for acked := 0; acked < n; acked++ {
			p, err := packets.ReadPacket(r, packets.V311, 1<<20)
			if err != nil || p.Type() != packets.PUBACK {
				return
			}
			if int64(acked) < flushed.Load() {
				lat = append(lat, time.Duration(int64(time.Since(t0))-sent[acked]))
			}
			<-slots
		}
	}()
	w := bufio.NewWriterSize(conn, 64<<10) // flushed only by flush: the times stay exact
	flush := func(upTo int) {
		w.Flush()
		now := int64(time.Since(t0))
		for j := int(flushed.Load()); j < upTo; j++ {
			sent[j] = now
		}
		flushed.Store(int64(upTo))
	}
	for k := range n {
		select {
		case slots <- struct{}{}:
		default:
			flush(k)
			slots <- struct{}{}
		}
		raw, _ := (&packets.Publish{Topic: topic, Payload: payload, QoS: 1, PacketID: uint16(k%60000 + 1)}).Append(nil, packets.V311)
		w.Write(raw)
	}
	flush(n)
	<-done
	return lat
}

// benchDial connects a 3.1.1 client and reads its CONNACK.
func benchDial(b *testing.B, addr, id string, clean bool) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	benchWrite(b, conn, &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V311, ClientID: id, CleanStart: clean})
	r := bufio.NewReader(conn)
	if p, err := packets.ReadPacket(r, packets.V311, 1<<20); err != nil || p.Type() != packets.CONNACK {
		b.Fatalf("CONNACK: %v %v", p, err)
	}
	if r.Buffered() > 0 {
		b.Fatal("bytes after CONNACK")
	}
	return conn
}

func benchWrite(b *testing.B, conn net.Conn, p packets.Packet) {
	raw, err := p.Append(nil, packets.V311)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Write(raw); err != nil {
		b.Fatal(err)
	}
}
