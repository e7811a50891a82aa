package webhook

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
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
			// As the topic chain asks: in line first, FilterTopic on a miss.
			d, ok := p.FilterTopicNow(c, publish)
			var err error
			if !ok {
				d, err = p.FilterTopic(ctx, c, publish)
			}
			if err != nil || d.Result != hooks.Allow {
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

// BenchmarkCheckTopicWarm is the pair of topic checks the broker makes per
// delivered message with an HTTP topic plugin and a warm cache, through a
// real hooks.Manager: the publish check (CheckTopic, on the publisher's
// goroutine) and the in-line receive check (CheckTopicNow, on the same
// goroutine). Each goroutine is a client of its own, as each publisher and
// its subscriber are; 5 per P, like the 10 publishers of
// scripts/plugin-bench.sh on 2 cores. Goal: ~35-50 ns per check, 0 allocs,
// and -cpu 2 no slower per check than -cpu 1 (no shared line written).
//
// The clients have the room for the chain's per-connection memo that the
// broker gives every connection, so a check repeating the connection's
// last one is answered from there; the -shared cases take that room away,
// leaving the plugin's memo, which every connection shares, to answer.
// Goal for the per-connection hit: a few ns over its counters, 0 allocs.
func BenchmarkCheckTopicWarm(b *testing.B) {
	for _, bc := range []struct {
		name   string
		action mqtt.Action
		shared bool
	}{
		{"publish", mqtt.ActionPublish, false}, {"receive-now", mqtt.ActionReceive, false},
		{"publish-shared", mqtt.ActionPublish, true}, {"receive-now-shared", mqtt.ActionReceive, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFake(b)
			f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
			p := benchPlugin(b, f.url(), true)
			m, err := hooks.New(hooks.Options{
				Plugins: map[string]hooks.PluginSpec{"acl": {Plugin: p, Type: "webhook"}},
				Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"acl"}},
			})
			if err != nil {
				b.Fatal(err)
			}
			chk := m.Hooks().Topics
			now := chk.(mqtt.TopicCheckerNow)
			const perP = 5
			b.SetParallelism(perP)
			ctx := context.Background()
			clients := make([]*mqtt.ClientInfo, perP*runtime.GOMAXPROCS(0))
			req := mqtt.TopicRequest{Action: bc.action, Topic: "bench/t"}
			for i := range clients {
				clients[i] = mqttClient(fmt.Sprintf("client-%d", i), "alice")
				if bc.shared {
					clients[i].Memo = nil
				}
				for range 3 { // fills the cache, the plugin's memo, the connection's
					if !chk.CheckTopic(ctx, clients[i], req).Allow {
						b.Fatal("denied")
					}
				}
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := clients[next.Add(1)-1]
				for pb.Next() {
					if bc.action == mqtt.ActionReceive {
						if res, ok := now.CheckTopicNow(c, req); !ok || !res.Allow {
							b.Fatal("not answered in line", ok)
						}
					} else if !chk.CheckTopic(ctx, c, req).Allow {
						b.Fatal("denied")
					}
				}
			})
		})
	}
}

// BenchmarkEncodeMessageReceived is the event scripts/plugin-bench.sh's
// events variant makes per PUBLISH: a broker_message_received of a 64-byte
// payload, with the id and time the broker stamps.
func BenchmarkEncodeMessageReceived(b *testing.B) {
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	e := &hooks.Event{ID: "0a1b2c3d4e5f6a7b-1a2b3c", Seq: 0x1a2b3c, Type: mqtt.EventMessageReceived,
		Time: time.Date(2026, 12, 7, 23, 40, 1, 123456789, time.UTC), Broker: "mqttd",
		Client:  &mqtt.ClientInfo{ClientID: "mqttbench-12345-p7"},
		Message: &hooks.Message{Topic: "mqttbench/12345/7", Payload: payload, QoS: 1}}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(must(appendEvent(nil, e, "", nil)))))
	for b.Loop() {
		buf, _ = appendEvent(buf[:0], e, "", nil)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
