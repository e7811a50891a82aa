package webhook_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook"
)

// grantsRoundMsgs is how many messages one round of
// BenchmarkGrantsPublishRatio sends, when b.N allows: tens of milliseconds,
// long enough that a round spans many scheduler time slices (shorter ones
// swung by ±30% on a loaded 2-core machine), short enough that b.N makes
// dozens of them, each broker's next to the other's, and the median ratio
// shrugs off the rounds another process disturbed.
const grantsRoundMsgs = 50000

// BenchmarkGrantsPublishRatio runs both brokers side by side over
// connections kept open for the whole run, and alternates rounds of
// grantsRoundMsgs messages, b.N per broker in all (none, grants, grants,
// none, ...), so both see the same machine load and neither always goes
// first. It reports, as medians over the round pairs:
//
//   - ratio: grants throughput / none throughput (1 = no cost), with
//     ratio-p25 and ratio-p75 for its spread;
//   - none-msgs/s and grants-msgs/s;
//   - none-cpu-ns/msg and grants-cpu-ns/msg: CPU time this process spent
//     per message during the round (both brokers and the clients are in
//     the process; the idle broker and the clients cost the same in both),
//     and cpu-ratio, none CPU / grants CPU, read like ratio;
//   - load1: the 1-minute load average when the run began (the machine is
//     shared: a run under heavy load says less).
//
// It measures; it does not judge. Run it several times and compare:
//
//	go test -run '^$' -bench GrantsPublishRatio -benchtime 2400000x -count 8 ./internal/webhook/
func BenchmarkGrantsPublishRatio(b *testing.B) {
	// Each broker's goroutines carry a profiler label (broker=none or
	// grants), so one -cpuprofile of this run compares them, same load:
	// go tool pprof -tagfocus broker=grants ...
	var noneAddr, grantsAddr string
	var calls *atomic.Int64
	load1 := loadAverage()
	labelled("none", func() {
		_, noneAddr = hookstest.Serve(b, mustManager(b, hooks.Options{Auth: hooks.AuthOptions{AllowAnonymous: true}}))
	})
	labelled("grants", func() { grantsAddr, calls = grantsBenchBroker(b) })
	conns := [2]*pubSub{openPubSub(b, noneAddr), openPubSub(b, grantsAddr)} // none, grants
	rounds := max(4, b.N/grantsRoundMsgs)
	per := max(pubBatch, b.N/rounds/pubBatch*pubBatch)
	for _, ps := range conns { // buffers, goroutines and caches settle first
		ps.round(b, per)
	}
	var rates, cpus [2][]float64
	var ratios, cpuRatios []float64
	b.ResetTimer()
	for i := range rounds {
		var rate, cpu [2]float64
		for j := range 2 {
			v := j ^ i%2 // none first in even rounds, grants first in odd ones
			c0 := processCPU(b)
			d := conns[v].round(b, per)
			cpu[v] = float64(processCPU(b)-c0) / float64(per)
			rate[v] = float64(per) / d.Seconds()
			rates[v], cpus[v] = append(rates[v], rate[v]), append(cpus[v], cpu[v])
		}
		ratios = append(ratios, rate[1]/rate[0])
		cpuRatios = append(cpuRatios, cpu[0]/cpu[1])
	}
	b.StopTimer()
	if n := calls.Load(); n != 0 {
		b.Fatalf("%d topic_filtering calls; the grants cover every topic", n)
	}
	b.ReportMetric(quantile(ratios, 0.5), "ratio")
	b.ReportMetric(quantile(ratios, 0.25), "ratio-p25")
	b.ReportMetric(quantile(ratios, 0.75), "ratio-p75")
	b.ReportMetric(quantile(cpuRatios, 0.5), "cpu-ratio")
	b.ReportMetric(quantile(rates[0], 0.5), "none-msgs/s")
	b.ReportMetric(quantile(rates[1], 0.5), "grants-msgs/s")
	b.ReportMetric(quantile(cpus[0], 0.5), "none-cpu-ns/msg")
	b.ReportMetric(quantile(cpus[1], 0.5), "grants-cpu-ns/msg")
	b.ReportMetric(load1, "load1")
	b.ReportMetric(0, "ns/op") // the whole run over b.N says nothing here
}

// labelled runs f with the calling goroutine labelled broker=name, so the
// goroutines f starts (a broker's listeners, and the connections and
// writers they start) carry the label.
func labelled(name string, f func()) {
	prev := context.Background()
	pprof.SetGoroutineLabels(pprof.WithLabels(prev, pprof.Labels("broker", name)))
	defer pprof.SetGoroutineLabels(prev)
	f()
}

// loadAverage returns the 1-minute load average, or -1 where /proc has
// none.
func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if err != nil {
		return -1
	}
	return f
}

// quantile returns the q quantile of xs (nearest rank), sorting a copy.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// processCPU returns the CPU time (user and system) this process has used,
// in nanoseconds.
func processCPU(b *testing.B) int64 { return rusageCPU(b) }

// BenchmarkGrantsPublish measures publish throughput, one publisher to one
// subscriber over raw sockets, for a client whose grants cover its topics
// with an HTTP plugin authenticating and checking topics (grants), against
// a broker with no plugins (none). Run both in one go and compare:
//
//	go test -run '^$' -bench GrantsPublish -count 5 ./internal/webhook/
func BenchmarkGrantsPublish(b *testing.B) {
	b.Run("none", func(b *testing.B) {
		_, addr := hookstest.Serve(b, mustManager(b, hooks.Options{Auth: hooks.AuthOptions{AllowAnonymous: true}}))
		benchPublish(b, addr)
	})
	b.Run("grants", func(b *testing.B) {
		addr, calls := grantsBenchBroker(b)
		benchPublish(b, addr)
		if n := calls.Load(); n != 0 {
			b.Fatalf("%d topic_filtering calls; the grants cover every topic", n)
		}
	})
}

// grantsBenchBroker runs a broker whose HTTP plugin authenticates with
// grants covering bench/<user>/#, and checks topics (denying all, so a call
// would show); it returns the address and the topic_filtering call count.
func grantsBenchBroker(b *testing.B) (string, *atomic.Int64) {
	topicCalls := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/manifest": // decisions only: no events
			io.WriteString(w, `{"name":"bench","version":"1","authenticate":true,"topic_filtering":true,"events":[]}`)
		case "/authenticate":
			io.WriteString(w, `{"result":"allow","acl":[{"topic":"bench/%u/#","actions":["publish","subscribe","receive"],"result":"allow"}],"attributes":{"tenant":"acme"}}`)
		case "/topic_filtering":
			topicCalls.Add(1)
			io.WriteString(w, `{"result":"deny"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	b.Cleanup(srv.Close)
	// events: [] as an auth and topic plugin's config says: otherwise
	// the broker builds every event for the second before it re-reads
	// what the manifest narrowed.
	p, err := webhook.New(webhook.Options{Alias: "grants", URL: srv.URL, Events: []string{}, Cache: webhook.DefaultCache,
		Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	_, addr := hookstest.Serve(b, mustManager(b, hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"grants": {Plugin: p}},
		Auth:    hooks.AuthOptions{Plugins: []string{"grants"}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"grants"}},
	}))
	return addr, topicCalls
}

func mustManager(b *testing.B, o hooks.Options) *hooks.Manager {
	m, err := hooks.New(o)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchPublish sends b.N messages (pubSub.round) and reports messages per
// second.
func benchPublish(b *testing.B, addr string) {
	ps := openPubSub(b, addr)
	b.ResetTimer()
	d := ps.round(b, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
}

const (
	pubBatch  = 50   // QoS 0 messages per write
	pubWindow = 2000 // at most this many sent ahead of what has arrived
)

// pubSub is one publisher and one subscriber (user alice, raw sockets) on
// one broker, kept open across rounds. A goroutine reads and counts what
// the subscriber receives.
type pubSub struct {
	pub, sub net.Conn
	one      []byte // pubBatch PUBLISH packets to bench/alice/t
	got      atomic.Int64
	progress chan struct{} // a token each pubBatch arrivals
	done     chan struct{} // the reader ended
}

// openPubSub connects and subscribes; the connections close, and the
// reader ends, when b's test ends.
func openPubSub(b *testing.B, addr string) *pubSub {
	ps := &pubSub{progress: make(chan struct{}, 1), done: make(chan struct{})}
	ps.sub = rawConnect(b, addr, "sub")
	subscribe, _ := (&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/alice/#"}}}).Append(nil, packets.V311)
	if _, err := ps.sub.Write(subscribe); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(ps.sub, 64<<10)
	if typ := skipPacket(b, r); typ != packets.SUBACK {
		b.Fatalf("packet %v, want SUBACK", typ)
	}
	ps.pub = rawConnect(b, addr, "pub")
	for range pubBatch {
		ps.one, _ = (&packets.Publish{Topic: "bench/alice/t", Payload: []byte("0123456789abcdef")}).Append(ps.one, packets.V311)
	}
	go func() {
		defer close(ps.done)
		for {
			typ := skipPacket(b, r)
			if typ == 0 {
				return // the connection ended
			}
			if typ == packets.PUBLISH && ps.got.Add(1)%pubBatch == 0 {
				select {
				case ps.progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	b.Cleanup(func() {
		ps.pub.Close()
		ps.sub.Close()
		<-ps.done
	})
	return ps
}

// round sends n QoS 0 messages (a multiple of pubBatch), at most pubWindow
// ahead of what has arrived, and returns how long they took from the first
// write to the last arrival.
func (ps *pubSub) round(b *testing.B, n int) time.Duration {
	base := ps.got.Load()
	wait := func(until func(got int64) bool) {
		for got := ps.got.Load() - base; !until(got); got = ps.got.Load() - base {
			select {
			case <-ps.progress:
			case <-ps.done:
				b.Fatalf("connection ended at %d of %d", got, n)
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled at %d of %d", got, n)
			}
		}
	}
	start := time.Now()
	for sent := 0; sent < n; sent += pubBatch {
		wait(func(got int64) bool { return int64(sent)-got <= pubWindow })
		if _, err := ps.pub.Write(ps.one); err != nil {
			b.Fatal(err)
		}
	}
	wait(func(got int64) bool { return got >= int64(n) })
	return time.Since(start)
}

// rawConnect opens a 3.1.1 connection as user alice and reads CONNACK.
func rawConnect(b *testing.B, addr, id string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	buf, _ := (&packets.Connect{ProtocolVersion: packets.V311, ClientID: id, CleanStart: true, KeepAlive: 60,
		Username: "alice", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}).Append(nil, packets.V311)
	if _, err := c.Write(buf); err != nil {
		b.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0]>>4 != byte(packets.CONNACK) || ack[3] != 0 {
		b.Fatalf("CONNACK %x: %v", ack, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// skipPacket reads one packet and returns its type.
func skipPacket(b *testing.B, r *bufio.Reader) packets.Type {
	h, err := r.ReadByte()
	if err != nil {
		return 0
	}
	n, shift := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		shift += 7
	}
	r.Discard(n)
	return packets.Type(h >> 4)
}
