package webhook_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook"
)

// BenchmarkGrantsPublishRatio runs both brokers side by side and
// alternates rounds of b.N messages (none, grants, none, grants, ...), so
// both see the same machine load; it reports each one's rate and the ratio
// grants/none.
//
//	go test -run '^$' -bench GrantsPublishRatio -benchtime 200000x ./internal/webhook/
func BenchmarkGrantsPublishRatio(b *testing.B) {
	_, none := hookstest.Serve(b, mustManager(b, hooks.Options{Auth: hooks.AuthOptions{AllowAnonymous: true}}))
	grants, calls := grantsBenchBroker(b)
	const rounds = 5
	var tNone, tGrants time.Duration
	for range rounds {
		tNone += publishRound(b, none, b.N)
		tGrants += publishRound(b, grants, b.N)
	}
	if n := calls.Load(); n != 0 {
		b.Fatalf("%d topic_filtering calls; the grants cover every topic", n)
	}
	msgs := float64(rounds * b.N)
	b.ReportMetric(msgs/tNone.Seconds(), "none-msgs/s")
	b.ReportMetric(msgs/tGrants.Seconds(), "grants-msgs/s")
	b.ReportMetric(tNone.Seconds()/tGrants.Seconds(), "ratio")
}

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

// benchPublish sends b.N messages (publishRound) and reports messages per
// second.
func benchPublish(b *testing.B, addr string) {
	b.ResetTimer()
	d := publishRound(b, addr, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
}

// publishRound sends n QoS 0 messages from one client to another, at most
// window ahead of what has arrived, and returns how long they took from
// the first write to the last arrival.
func publishRound(b *testing.B, addr string, n int) time.Duration {
	const window, batch = 2000, 50
	sub := rawConnect(b, addr, "sub")
	subscribe, _ := (&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/alice/#"}}}).Append(nil, packets.V311)
	if _, err := sub.Write(subscribe); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(sub, 64<<10)
	if typ := skipPacket(b, r); typ != packets.SUBACK {
		b.Fatalf("packet %v, want SUBACK", typ)
	}
	pub := rawConnect(b, addr, "pub")
	var one []byte
	for range batch {
		one, _ = (&packets.Publish{Topic: "bench/alice/t", Payload: []byte("0123456789abcdef")}).Append(one, packets.V311)
	}
	var got atomic.Int64
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got.Load() < int64(n) {
			typ := skipPacket(b, r)
			if typ == 0 {
				return // the connection ended: the wait below fails
			}
			if typ == packets.PUBLISH {
				if got.Add(1)%batch == 0 {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	start := time.Now()
	for sent := 0; sent < n; sent += batch {
		for int64(sent)-got.Load() > window {
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled at %d of %d", got.Load(), n)
			}
		}
		if _, err := pub.Write(one); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("received %d of %d", got.Load(), n)
	}
	d := time.Since(start)
	pub.Close()
	sub.Close()
	return d
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
