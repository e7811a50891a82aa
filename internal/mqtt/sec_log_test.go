package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// secLog is a slog.Handler that keeps every record as level, message and
// attributes (values formatted with %v), for tests that check what an
// operator would see.
type secLog struct {
	mu   sync.Mutex
	recs []secRecord
}

type secRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *secLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *secLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *secLog) WithGroup(string) slog.Handler            { return h }

func (h *secLog) Handle(_ context.Context, r slog.Record) error {
	rec := secRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = fmt.Sprint(a.Value.Any())
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

// find returns the records with message msg whose attributes include want.
func (h *secLog) find(level slog.Level, msg string, want map[string]string) []secRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []secRecord
next:
	for _, r := range h.recs {
		if r.level != level || r.msg != msg {
			continue
		}
		for k, v := range want {
			if r.attrs[k] != v {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// waitOne waits for exactly one matching record and returns it.
func (h *secLog) waitOne(t *testing.T, level slog.Level, msg string, want map[string]string) secRecord {
	t.Helper()
	var got []secRecord
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = h.find(level, msg, want)
		if len(got) >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) != 1 {
		h.mu.Lock()
		all := fmt.Sprintf("%+v", h.recs)
		h.mu.Unlock()
		t.Fatalf("%d %v records %q with %v; all records: %s", len(got), level, msg, want, all)
	}
	return got[0]
}

// An operator sees an attack at the default level: every refused CONNECT
// is one info record naming the client id, user name, address, listener,
// protocol, reason code, reason and deciding plugin, and is kept in the
// refusal ring; every connect and disconnect is one info record; denied
// subscribes, publishes and receives are debug records naming the client,
// user, topic, action and reason code.
func TestSecurityLogging(t *testing.T) {
	lg := &secLog{}
	auth := authFunc(func(_ context.Context, c *ClientInfo, pw []byte) AuthResult {
		if string(pw) != "pw" {
			return AuthResult{ReasonCode: 0x86, Reason: "bad password", Plugin: "accounts"}
		}
		return AuthResult{Allow: true}
	})
	tb := startBroker(t, func(o *Options) {
		o.Logger = slog.New(lg)
		o.Hooks.Auth = auth
		o.Hooks.Topics = denyUserTopics("mallory", ActionSubscribe, "secret/")
	})

	bad := dialRaw(t, tb.addr)
	if ack := bad.connectWith(&packets.Connect{ClientID: "guesser", CleanStart: true, KeepAlive: 60,
		UsernameFlag: true, Username: "root", PasswordFlag: true, Password: []byte("123456")}); ack.ReasonCode != packets.ConnRefusedBadUsernameOrPassword {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	remote := bad.conn.LocalAddr().String()
	lg.waitOne(t, slog.LevelInfo, "connection refused", map[string]string{
		"client_id": "guesser", "username": "root", "remote": remote, "listener": "tcp", "protocol": "4",
		"reason_code": "0x86", "reason": "bad password", "plugin": "accounts"})
	refs := tb.RecentRefusals()
	if len(refs) != 1 || refs[0].ClientID != "guesser" || refs[0].Username != "root" || refs[0].RemoteAddr != remote ||
		refs[0].Listener != "tcp" || refs[0].Protocol != 4 || refs[0].ReasonCode != 0x86 || refs[0].Plugin != "accounts" ||
		refs[0].Reason != "bad password" || refs[0].Time.IsZero() {
		t.Fatalf("refusal ring: %+v", refs)
	}

	// A refusal by the broker's own rules names no plugin.
	empty := dialRaw(t, tb.addr)
	if ack := empty.connectWith(&packets.Connect{CleanStart: false, KeepAlive: 60}); ack.ReasonCode == 0 {
		t.Fatal("empty client id without clean session accepted")
	}
	lg.waitOne(t, slog.LevelInfo, "connection refused", map[string]string{"client_id": "", "plugin": "", "protocol": "4", "reason_code": "0x85"})
	if refs := tb.RecentRefusals(); len(refs) != 2 || refs[0].ReasonCode != 0x85 {
		t.Fatalf("refusal ring after the broker's refusal: %+v", refs)
	}

	m := connectAs(t, tb.addr, packets.V5, &packets.Connect{ClientID: "mal", CleanStart: true}, "mallory")
	lg.waitOne(t, slog.LevelInfo, "client connected", map[string]string{
		"client_id": "mal", "username": "mallory", "remote": m.conn.LocalAddr().String(), "listener": "tcp", "protocol": "5"})
	if codes := m.subscribeOpts(1, 0, packets.Subscription{Filter: "secret/#", QoS: 1}); codes[0] != packets.NotAuthorized {
		t.Fatalf("SUBACK %v", codes)
	}
	lg.waitOne(t, slog.LevelDebug, "denied", map[string]string{
		"client_id": "mal", "username": "mallory", "topic": "secret/#", "action": "subscribe", "reason_code": "0x87"})
	m.send(&packets.Disconnect{})
	lg.waitOne(t, slog.LevelInfo, "client disconnected", map[string]string{
		"client_id": "mal", "username": "mallory", "listener": "tcp", "protocol": "5", "reason": "disconnect"})
}
