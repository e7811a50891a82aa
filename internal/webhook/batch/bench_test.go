package batch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/spool"
)

func benchEvents(clients int) []*hooks.Event {
	es := make([]*hooks.Event, 4096)
	for i := range es {
		es[i] = ev(fmt.Sprint("client-", i%clients), i)
	}
	return es
}

// BenchmarkPush is the broker's side: what handing an event to a plugin
// costs the goroutine that publishes.
func BenchmarkPush(b *testing.B) {
	p := New(Options{Linger: -1, Logger: quiet}, encode, func(context.Context, []byte, int) error { return nil })
	defer p.Close(context.Background())
	es := benchEvents(64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Push(es[i%len(es)])
		i++
	}
}

// BenchmarkDeliverLoopback is end to end: events pushed, batched, POSTed to
// a plugin on loopback and answered 200. The pusher holds back while any
// lane's queue is half full so the number is delivery, not overflow.
func BenchmarkDeliverLoopback(b *testing.B) { deliverLoopback(b, nil) }

// BenchmarkDeliverLoopbackDurable is BenchmarkDeliverLoopback with a
// spool: what durability costs while the plugin keeps up (nothing should
// reach the spool).
func BenchmarkDeliverLoopbackDurable(b *testing.B) {
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	deliverLoopback(b, sp)
}

func deliverLoopback(b *testing.B, sp *spool.Spool) {
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n, _ := strconv.Atoi(r.Header.Get("X-Events"))
		received.Add(int64(n))
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	send := func(ctx context.Context, body []byte, n int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("X-Events", strconv.Itoa(n))
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return Classify(resp, err)
	}
	opts := Options{Logger: quiet, Spool: sp}.withDefaults()
	p := New(opts, encode, send)
	perLane := opts.QueueSize / opts.Lanes
	es := benchEvents(256)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%256 == 0 {
			for p.busiestLane() > perLane/2 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		p.Push(es[i%len(es)])
		i++
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	s := p.Stats()
	if s.Sent != uint64(received.Load()) || s.Sent != uint64(i)-s.Dropped.Overflow {
		b.Fatalf("stats %+v, plugin received %d of %d", s, received.Load(), i)
	}
	b.ReportMetric(float64(s.Sent)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(s.Sent)/float64(max(s.Batches, 1)), "events/batch")
	b.ReportMetric(float64(s.Dropped.Overflow), "dropped")
	if sp != nil {
		b.ReportMetric(float64(s.Spooled), "spooled")
	}
}

var quiet = slog.New(slog.DiscardHandler)

func (p *Pipeline) busiestLane() int {
	n := 0
	for _, l := range p.lanes {
		n = max(n, l.len())
	}
	return n
}

// BenchmarkDeliverFromSpool is the spool's side of a plugin coming back:
// b.N events already spooled (written before the timer starts) delivered
// to a plugin on loopback, read, POSTed and released in batches.
func BenchmarkDeliverFromSpool(b *testing.B) {
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n, _ := strconv.Atoi(r.Header.Get("X-Events"))
		received.Add(int64(n))
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	send := func(ctx context.Context, body []byte, n int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("X-Events", strconv.Itoa(n))
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return Classify(resp, err)
	}
	sp, err := spool.Open(b.TempDir(), spool.Options{MaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	es := benchEvents(256)
	entries := make([]spool.Entry, 0, 1000)
	for i := 0; i < b.N; {
		entries = entries[:0]
		for ; len(entries) < cap(entries) && i < b.N; i++ {
			js, _ := encode(nil, es[i%len(es)])
			entries = append(entries, spool.Entry{ID: es[i%len(es)].ID, JSON: js})
		}
		if _, _, err := sp.Append(entries); err != nil {
			b.Fatal(err)
		}
	}
	if err := sp.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	p := New(Options{Logger: quiet, Spool: sp}, encode, send)
	for received.Load() < int64(b.N) || sp.Stats().Records > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if s := p.Stats(); s.FromSpool != uint64(b.N) {
		b.Fatalf("stats %+v, want %d from the spool", s, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
