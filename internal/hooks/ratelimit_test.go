package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeTime is a settable clock for the limiter.
type fakeTime struct{ t time.Time }

func (f *fakeTime) now() time.Time      { return f.t }
func (f *fakeTime) add(d time.Duration) { f.t = f.t.Add(d) }
func limiterAt(o RateLimitOptions) (*loginLimiter, *fakeTime) {
	l := newLoginLimiter(o)
	clk := &fakeTime{t: time.Unix(1_700_000_000, 0)}
	l.now = clk.now
	return l, clk
}

func mustSource(t *testing.T, remote string) netip.Prefix {
	t.Helper()
	p, ok := sourceOf(remote)
	if !ok {
		t.Fatalf("%q has no source", remote)
	}
	return p
}

// fail is one failed login from key; false when the limiter refused it.
func fail(l *loginLimiter, key netip.Prefix) bool {
	if l.begin(key) != limitNone {
		return false
	}
	l.end(key, true)
	return true
}

func TestLimiterBucket(t *testing.T) {
	l, clk := limiterAt(RateLimitOptions{FailuresPerSecond: 2, Burst: 3})
	src := mustSource(t, "192.0.2.7:1883")
	for i := range 3 {
		if !fail(l, src) {
			t.Fatalf("failure %d of a burst of 3 was refused", i+1)
		}
	}
	if l.begin(src) != limitFailures {
		t.Fatal("a fourth login after 3 failures in a row was let through")
	}
	if !fail(l, mustSource(t, "192.0.2.8:1883")) {
		t.Fatal("another source was refused")
	}
	clk.add(499 * time.Millisecond)
	if l.begin(src) != limitFailures {
		t.Fatal("a token came back before 1/rate")
	}
	clk.add(time.Millisecond)
	if !fail(l, src) || fail(l, src) {
		t.Fatal("want exactly one token back after 1/rate")
	}
	// Successes spend nothing; once full again the source is forgotten.
	clk.add(time.Second) // two tokens back: 2 of 3
	for range 5 {
		if l.begin(src) != limitNone {
			t.Fatal("a source with tokens left was refused")
		}
		l.end(src, false)
	}
	clk.add(time.Second)
	l.begin(src)
	l.end(src, false)
	if _, ok := l.sources[src]; ok {
		t.Fatal("a source with a full bucket and nothing in progress is still tracked")
	}
}

// The logins one source has in progress are bounded, however good.
func TestLimiterPending(t *testing.T) {
	l, _ := limiterAt(RateLimitOptions{MaxPending: 2})
	src := mustSource(t, "192.0.2.7:1883")
	if l.begin(src) != limitNone || l.begin(src) != limitNone {
		t.Fatal("two logins in progress were refused")
	}
	if l.begin(src) != limitPending {
		t.Fatal("a third login in progress was let through")
	}
	if l.begin(mustSource(t, "192.0.2.8:1")) != limitNone {
		t.Fatal("another source was refused")
	}
	l.end(src, false)
	if l.begin(src) != limitNone {
		t.Fatal("a login after one ended was refused")
	}
	for range 100 { // failures-per-second 0: no failure limit
		l.end(src, true)
		l.begin(src)
	}
}

func TestLimiterOffAndUnknownSources(t *testing.T) {
	l, _ := limiterAt(RateLimitOptions{Burst: 1})
	src := mustSource(t, "192.0.2.7:1883")
	for range 100 {
		if !fail(l, src) {
			t.Fatal("a limiter that is off limited")
		}
	}
	if l.tracked() != 0 {
		t.Fatal("a limiter that is off tracks sources")
	}
	if _, ok := sourceOf("@unix-socket"); ok {
		t.Fatal("an address without an IP got a source")
	}
}

// Every address of one IPv6 /64 is one source; IPv4 addresses are their own.
func TestLimiterSourceKeys(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2", true},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", false},
		{"192.0.2.1:1", "192.0.2.1:9", true},
		{"192.0.2.1:1", "192.0.2.2:1", false},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:2", true},
	} {
		if got := mustSource(t, c.a) == mustSource(t, c.b); got != c.same {
			t.Errorf("%s and %s: same source %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// A spray of addresses cannot grow the map past max-sources; the least
// recently failed go first.
func TestLimiterBoundedSources(t *testing.T) {
	l, _ := limiterAt(RateLimitOptions{FailuresPerSecond: 1, Burst: 2, MaxSources: 100})
	flood := mustSource(t, "198.51.100.1:1")
	fail(l, flood)
	fail(l, flood)
	for i := range 10_000 {
		fail(l, mustSource(t, fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255)))
		if i%50 == 0 {
			fail(l, flood) // refused, and so kept recent
		}
	}
	if n := l.tracked(); n != 100 {
		t.Fatalf("tracked %d sources, want the bound of 100", n)
	}
	if fail(l, flood) {
		t.Fatal("the flooding source, recently refused, was forgotten and let through")
	}
	l.configure(RateLimitOptions{FailuresPerSecond: 1, Burst: 2, MaxSources: 10})
	if n := l.tracked(); n != 10 {
		t.Fatalf("after lowering max-sources: %d tracked", n)
	}
}

// The chain refuses a source over its budget at once, without asking the
// plugin: 0x97 for 5.0, 0x87 (which the broker sends as 0x05) for 3.1.1;
// other sources go on, and a good login from the limited source's
// neighbour is unaffected. Refusals are counted.
func TestAuthChainRateLimit(t *testing.T) {
	var asked atomic.Int64
	var logs strings.Builder
	m := mustNew(t, Options{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Plugins: map[string]PluginSpec{"accounts": {Plugin: authFunc(func(_ context.Context, r *AuthRequest) (Decision, error) {
			asked.Add(1)
			if string(r.Password) == "good" {
				return Decision{Result: Allow}, nil
			}
			return Decision{Result: Deny, ReasonCode: byte(packets.BadUsernameOrPassword)}, nil
		})}},
		Auth: AuthOptions{Plugins: []string{"accounts"}, RateLimit: RateLimitOptions{FailuresPerSecond: 0.001, Burst: 3}},
	})
	auth := m.Hooks().Auth
	bad := &mqtt.ClientInfo{ClientID: "x", RemoteAddr: "127.0.0.2:5000", ProtocolVersion: 5}
	for i := range 3 {
		if res := auth.Authenticate(context.Background(), bad, []byte("guess")); res.ReasonCode != byte(packets.BadUsernameOrPassword) || res.Plugin != "accounts" {
			t.Fatalf("guess %d: %+v, want 0x86 from accounts", i, res)
		}
	}
	before := asked.Load()
	res := auth.Authenticate(context.Background(), bad, []byte("good"))
	if res.Allow || res.ReasonCode != byte(packets.QuotaExceeded) || res.Plugin != "" {
		t.Fatalf("over budget: %+v, want refused with 0x97 by the broker", res)
	}
	bad.ProtocolVersion = 4
	if res := auth.Authenticate(context.Background(), bad, []byte("good")); res.Allow || res.ReasonCode != byte(packets.QuotaExceeded) {
		t.Fatalf("3.1.1 over budget: %+v, want 0x97 (the broker sends it as 0x05)", res)
	}
	if asked.Load() != before {
		t.Fatal("the plugin was asked about a source over its budget")
	}
	good := &mqtt.ClientInfo{ClientID: "y", RemoteAddr: "127.0.0.1:5000", ProtocolVersion: 5}
	for range 10 { // successes never spend the budget
		if res := auth.Authenticate(context.Background(), good, []byte("good")); !res.Allow || res.Plugin != "accounts" {
			t.Fatalf("a good login from another source: %+v", res)
		}
	}
	if got := testCounter(t, m.metrics.rateLimited.WithLabelValues("failures")); got != 2 {
		t.Fatalf("rate-limited refusals counted %v, want 2", got)
	}
	// Logged at info, once per interval however many: one line for two.
	if n := strings.Count(logs.String(), "login refused by auth.rate-limit"); n != 1 || !strings.Contains(logs.String(), "level=INFO") ||
		!strings.Contains(logs.String(), "remote=127.0.0.2:5000") {
		t.Fatalf("want one info line naming the source, got %d:\n%s", n, logs.String())
	}
}

func testCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// AuthResult.Plugin names the plugin that decided, in both modes; "" when
// the broker's own rules (anonymous access) did.
func TestAuthResultNamesThePlugin(t *testing.T) {
	answer := func(r Result) Plugin {
		return authFunc(func(context.Context, *AuthRequest) (Decision, error) { return Decision{Result: r}, nil })
	}
	for _, c := range []struct {
		mode      string
		p1, p2    Result
		want      string
		wantAllow bool
	}{
		{"all", Ignore, Deny, "p2", false},
		{"all", Allow, Ignore, "p1", true},
		{"all", Ignore, Ignore, "", true},
		{"first", Ignore, Allow, "p2", true},
		{"first", Deny, Allow, "p1", false},
	} {
		m := mustNew(t, Options{
			Plugins: map[string]PluginSpec{"p1": {Plugin: answer(c.p1)}, "p2": {Plugin: answer(c.p2)}},
			Auth:    AuthOptions{Plugins: []string{"p1", "p2"}, Mode: c.mode, AllowAnonymous: true},
		})
		res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{ClientID: "c", ProtocolVersion: 5}, nil)
		if res.Allow != c.wantAllow || res.Plugin != c.want {
			t.Errorf("%s %v+%v: %+v, want allow %v by %q", c.mode, c.p1, c.p2, res, c.wantAllow, c.want)
		}
	}
}

// A source with a login in progress is never forgotten to make room: its
// end would otherwise count against a new entry for the same address.
// When every tracked source is busy, a new source is refused (and counted
// by the chain) rather than growing the map.
func TestLimiterKeepsBusySources(t *testing.T) {
	l, _ := limiterAt(RateLimitOptions{FailuresPerSecond: 1, Burst: 2, MaxPending: 1, MaxSources: 2})
	a, b, c := mustSource(t, "192.0.2.1:1"), mustSource(t, "192.0.2.2:1"), mustSource(t, "192.0.2.3:1")
	if l.begin(a) != limitNone || l.begin(b) != limitNone {
		t.Fatal("the first two sources were refused")
	}
	if why := l.begin(c); why != limitSources {
		t.Fatalf("a third source with both slots busy: got %d, want limitSources", why)
	}
	if n := l.tracked(); n != 2 {
		t.Fatalf("tracked %d sources, want 2", n)
	}
	// a is still pending, so a second login from it is over max-pending.
	if why := l.begin(a); why != limitPending {
		t.Fatalf("a's pending login was forgotten: begin gave %d, want limitPending", why)
	}
	l.end(a, true) // a failed: idle now, with a token spent
	if why := l.begin(c); why != limitNone {
		t.Fatalf("c refused (%d) though a is idle and may be forgotten", why)
	}
	if why := l.begin(b); why != limitPending {
		t.Fatalf("b, still pending, was forgotten to make room: begin gave %d", why)
	}
	l.end(b, false)
	l.end(c, false)
	if n := l.tracked(); n != 0 {
		t.Fatalf("%d sources tracked after every login ended with a full bucket", n)
	}
}
