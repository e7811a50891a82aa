package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// BenchmarkConnectWillDisconnect is one client's whole life with a will:
// dial, CONNECT with a retained will, CONNACK, then a dropped connection,
// until the broker has published (and, with a topic checker, checked) the
// will, seen as its retained_message event. "checker" runs an in-process
// checker that allows; "none" has no checker, so the ratio of the two is
// what the checker (the will's check among it) adds to the path.
func BenchmarkConnectWillDisconnect(b *testing.B) {
	allow := topicFunc(func(context.Context, *ClientInfo, TopicRequest) TopicResult { return TopicResult{Allow: true} })
	for _, bc := range []struct {
		name  string
		check TopicChecker
	}{{"none", nil}, {"checker", allow}} {
		b.Run(bc.name, func(b *testing.B) {
			wills := make(chan string, 1)
			br, err := New(Options{Listeners: []ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
				SysInterval: -1, Hooks: Hooks{Topics: bc.check, Events: benchWillSink(wills)}})
			if err != nil {
				b.Fatal(err)
			}
			if err := br.Start(); err != nil {
				b.Fatal(err)
			}
			defer br.Close(context.Background())
			addr := br.Addr("tcp").String()
			b.ResetTimer()
			cpu0 := benchCPU()
			for i := range b.N {
				id := fmt.Sprint("bench-will-", i)
				connect, _ := (&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V311, ClientID: id,
					CleanStart: true, KeepAlive: 60, WillFlag: true, WillTopic: "bench/will", WillQoS: 1,
					WillRetain: true, WillPayload: []byte(id)}).Append(nil, packets.V311)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(connect)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := packets.ReadPacket(bufio.NewReader(c), packets.V311, 1024); err != nil {
					b.Fatal(err)
				}
				c.Close()
				select {
				case got := <-wills:
					if got != id {
						b.Fatalf("will %q, want %q", got, id)
					}
				case <-time.After(5 * time.Second):
					b.Fatalf("will of %s not published", id)
				}
			}
			// CPU time (client and broker, one process) holds steadier than
			// wall time on a shared machine.
			b.ReportMetric(float64(benchCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// benchWillSink passes the payload of every retained_message event to ch.
type benchWillSink chan<- string

func (s benchWillSink) Wants() EventMask { return EventMask(0).With(EventRetainedMessage) }
func (s benchWillSink) Event(e *Event)   { s <- string(e.Message.Payload) }
