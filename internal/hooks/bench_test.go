package hooks

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// allowAll is the cheapest in-process plugin: every question allowed.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, *AuthRequest) (Decision, error) {
	return Decision{Result: Allow}, nil
}

func (allowAll) FilterTopic(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
	return Decision{Result: Allow}, nil
}

// discard is a sink that drops what it is handed, as a queue's Push would
// cost aside.
type discard struct{ mask mqtt.EventMask }

func (d discard) Wants() mqtt.EventMask { return d.mask }
func (discard) Event(*Event)            {}

func benchManager(b *testing.B, n int, topics bool) *Manager {
	specs := map[string]PluginSpec{}
	var aliases []string
	for i := range n {
		alias := string(rune('a' + i))
		specs[alias] = PluginSpec{Plugin: allowAll{}}
		aliases = append(aliases, alias)
	}
	opts := Options{Plugins: specs, Auth: AuthOptions{Plugins: aliases, AllowAnonymous: true}}
	if topics {
		opts.Auth.Plugins = nil
		opts.Topics = TopicOptions{Enable: true, Plugins: aliases}
	}
	return mustNew(b, opts)
}

func BenchmarkCheckTopic(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(string(rune('0'+n))+"plugins", func(b *testing.B) {
			chk := benchManager(b, n, true).Hooks().Topics
			ci := &mqtt.ClientInfo{ClientID: "c"}
			req := mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "bench/t", QoS: 1}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if !chk.CheckTopic(ctx, ci, req).Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	auth := benchManager(b, 1, false).Hooks().Auth
	ci := &mqtt.ClientInfo{ClientID: "c", ProtocolVersion: 5}
	pw := []byte("secret")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !auth.Authenticate(ctx, ci, pw).Allow {
			b.Fatal("denied")
		}
	}
}

func BenchmarkEventFanOut(b *testing.B) {
	mask := eventsOf(mqtt.EventMessageReceived)
	for _, bc := range []struct {
		name string
		sink Plugin
	}{
		{"copy", discard{mask: mask}}, // an EventSink: the event is copied for it
		{"borrow", discardNow{mask}},  // an EventSinkNow: the broker's event, stamped
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := mustNew(b, Options{Plugins: map[string]PluginSpec{"s": {Plugin: bc.sink}}}).Hooks().Events
			ci := &mqtt.ClientInfo{ClientID: "publisher", Username: "u", ProtocolVersion: 4}
			e := &mqtt.Event{Type: mqtt.EventMessageReceived, Client: ci, Topic: "bench/t",
				Message: &mqtt.Message{Topic: "bench/t", Payload: make([]byte, 64)}}
			b.ReportAllocs()
			for b.Loop() {
				ev.Event(e)
			}
		})
	}
}

// BenchmarkPublishPath drives QoS 0 publishes through a real broker over
// loopback, one publisher and one subscriber speaking raw MQTT 3.1.1 with
// no allocation of their own, so allocs/op are the broker's per message.
// It compares no hooks with an in-process allow-all topic plugin through
// the Manager (a publish check plus a receive check per message).
func BenchmarkPublishPath(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"no-plugins", Options{Auth: AuthOptions{AllowAnonymous: true}}},
		{"allow-all-topic-plugin", Options{Auth: AuthOptions{AllowAnonymous: true},
			Plugins: map[string]PluginSpec{"acl": {Plugin: allowAll{}}}, Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := mustNew(b, bc.opts)
			br, err := mqtt.New(mqtt.Options{SysInterval: -1, Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}, Hooks: m.Hooks()})
			if err != nil {
				b.Fatal(err)
			}
			if err := br.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { br.Close(context.Background()) })
			addr := br.Addr("t").String()
			sub := rawSession(b, addr, "sub")
			pub := rawSession(b, addr, "pub")
			s, _ := (&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/t"}}}).Append(nil, packets.V311)
			rawExchange(b, sub, s, 5) // SUBACK

			const batch = 64
			one, _ := (&packets.Publish{Topic: "bench/t", Payload: make([]byte, 64)}).Append(nil, packets.V311)
			var out []byte
			for range batch {
				out = append(out, one...)
			}
			in := make([]byte, len(out))
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				if _, err := pub.Write(out[:n*len(one)]); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(sub, in[:n*len(one)]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			pub.Close()
			sub.Close()
		})
	}
}

// rawSession connects a raw 3.1.1 client with a clean session.
func rawSession(b *testing.B, addr, id string) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := (&packets.Connect{ProtocolVersion: packets.V311, ClientID: id, CleanStart: true}).Append(nil, packets.V311)
	rawExchange(b, conn, c, 4) // CONNACK
	return conn
}

// rawExchange writes a packet and reads an answer of known length.
func rawExchange(b *testing.B, conn net.Conn, out []byte, answer int) {
	if _, err := conn.Write(out); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, answer)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHoldRelease is the hold every waiting check and every event
// takes on the plugin set, and gives back: with -cpu 2 and more it should
// stay near its -cpu 1 cost, with no allocation.
func BenchmarkHoldRelease(b *testing.B) {
	m := benchManager(b, 1, true)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.acquire().release()
		}
	})
}
