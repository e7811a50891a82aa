package webhook

import (
	"context"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
)

// BenchmarkAuthenticateCached is a CONNECT answered from the cache, through
// the whole Plugin: key, lookup, metrics. Goal: < 300 ns/op, 0 allocs.
func BenchmarkAuthenticateCached(b *testing.B) {
	f := newFake(b)
	p := benchPlugin(b, f.url(), true)
	req := &hooks.AuthRequest{Client: mqttClient("sensor-17", "alice"), Password: []byte("correct horse battery staple")}
	if _, err := p.Authenticate(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := p.Authenticate(ctx, req); err != nil || d.Result != hooks.Allow {
				b.Fatal(d, err)
			}
		}
	})
}

// BenchmarkFilterTopicCached is a publish check answered from the cache
// (salted key and LRU), with the topic memo in front of it switched off.
func BenchmarkFilterTopicCached(b *testing.B) { benchFilterTopic(b, false) }

// BenchmarkFilterTopicMemo is a publish check answered from the topic memo,
// as every repeated check is by default. Goal: <= 80 ns/op, 0 allocs.
func BenchmarkFilterTopicMemo(b *testing.B) { benchFilterTopic(b, true) }

// benchFilterTopic runs repeated publish checks for one client and topic in
// parallel, after a first one filled the cache (and the memo, when on).
func benchFilterTopic(b *testing.B, memo bool) {
	f := newFake(b)
	p := benchPlugin(b, f.url(), true)
	if !memo {
		p.memo = nil
	}
	c := mqttClient("sensor-17", "alice")
	ctx := context.Background()
	if _, err := p.FilterTopic(ctx, c, publish); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := p.FilterTopic(ctx, c, publish); err != nil || d.Result != hooks.Allow {
				b.Fatal(d, err)
			}
		}
	})
}

// BenchmarkAuthenticateUncached is a full call to a loopback plugin: body,
// signature, HTTP round trip on a pooled connection, answer.
func BenchmarkAuthenticateUncached(b *testing.B) {
	f := newFake(b)
	p := benchPlugin(b, f.url(), false)
	req := &hooks.AuthRequest{Client: mqttClient("sensor-17", "alice"), Password: []byte("pw")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEvent is one broker_message_received event encoded for a
// batch. Goal: <= 250 ns/op, and no allocation when dst has room.
func BenchmarkEncodeEvent(b *testing.B) {
	p := benchPlugin(b, "http://127.0.0.1:1", true)
	e := allEvents()[8]
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.encodeEvent(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPlugin(b *testing.B, url string, cached bool) *Plugin {
	o := testOptions(url)
	o.Secret = "s3cret"
	if !cached {
		o.Cache.Size = 0
	}
	p, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	return p
}
