package webhook

import (
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// shadowRoundConnects is how many connects each broker makes per round
// of BenchmarkShadowConnect.
const shadowRoundConnects = 50

// BenchmarkShadowConnect is the cost of a shadow plugin on the connect
// path: CONNECT-to-CONNACK latency of a broker whose HTTP plugin "live"
// authenticates (allow), with and without a second HTTP plugin shadowing it
// (answering deny at once, so every connect also makes a shadow call and
// counts a disagreement). Both brokers run side by side; rounds of
// shadowRoundConnects connects alternate between them (without, with,
// with, without, ...), b.N connects each in all, every one a new client id
// on a new connection (raw sockets, MQTT 3.1.1), closed after its CONNACK.
// It reports each one's p50 and p99 and the ratios with/without; it
// measures, it does not judge:
//
//	go test -run '^$' -bench ShadowConnect -benchtime 2000x -count 4 ./internal/webhook/
func BenchmarkShadowConnect(b *testing.B) {
	released := make(chan struct{})
	close(released) // the shadow answers at once: its calls cost what they cost
	addrs := [2]string{
		shadowStack(b, prometheus.NewRegistry(), false, nil),
		shadowStack(b, prometheus.NewRegistry(), true, released),
	}
	for v, addr := range addrs { // connections, caches and goroutines settle first
		for i := range 20 {
			connectTook(b, addr, fmt.Sprintf("warm-%d-%d", v, i))
		}
	}
	var took [2][]time.Duration
	rounds := max(2, b.N/shadowRoundConnects)
	per := max(1, b.N/rounds)
	b.ResetTimer()
	for i := range rounds {
		for j := range 2 {
			v := j ^ i%2 // without first in even rounds, with first in odd ones
			for k := range per {
				took[v] = append(took[v], connectTook(b, addrs[v], fmt.Sprintf("c-%d-%d-%d", v, i, k)))
			}
		}
	}
	b.StopTimer()
	q := func(v int, f float64) float64 {
		s := took[v]
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(f*float64(len(s))))].Microseconds())
	}
	b.ReportMetric(q(0, 0.5), "without-p50-µs")
	b.ReportMetric(q(0, 0.99), "without-p99-µs")
	b.ReportMetric(q(1, 0.5), "with-p50-µs")
	b.ReportMetric(q(1, 0.99), "with-p99-µs")
	b.ReportMetric(q(1, 0.5)/q(0, 0.5), "p50-ratio")
	b.ReportMetric(q(1, 0.99)/q(0, 0.99), "p99-ratio")
	b.ReportMetric(0, "ns/op") // the whole run over b.N says nothing here
}

// connectTook dials addr, sends a 3.1.1 CONNECT as user u, and returns
// how long it took from the dial to the CONNACK, which must accept.
func connectTook(b *testing.B, addr, id string) time.Duration {
	buf, _ := (&packets.Connect{ProtocolVersion: packets.V311, ClientID: id, CleanStart: true, KeepAlive: 30,
		Username: "u", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}).Append(nil, packets.V311)
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(buf); err != nil {
		b.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(bound))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0]>>4 != byte(packets.CONNACK) || ack[3] != 0 {
		b.Fatalf("%s: CONNACK %x: %v", id, ack, err)
	}
	return time.Since(start)
}
