package hooks

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// decisive are the behaviours every two-plugin combination is built from.
var decisive = []behaviour{bAllow, bDeny, bIgnore, bError, bTimeout}

// testTimeout is the plugins' timeout in the tables: it ends bTimeout's
// wait, and is no assertion about time.
const testTimeout = 20 * time.Millisecond

// effective is what the chain should make of a behaviour under on-error
// deny: the result, and whether a deny is an outage.
func effective(b behaviour) (Result, bool) {
	switch b {
	case bAllow:
		return Allow, false
	case bDeny:
		return Deny, false
	case bIgnore:
		return Ignore, false
	}
	return Deny, true
}

func twoPlugins(b1, b2 behaviour) map[string]PluginSpec {
	return map[string]PluginSpec{
		"p1": {Plugin: &scripted{b: b1}, Timeout: testTimeout, Type: "scripted"},
		"p2": {Plugin: &scripted{b: b2}, Timeout: testTimeout, Type: "scripted"},
	}
}

// Every combination of allow / deny / ignore / error / timeout across two
// plugins, in both modes, with anonymous access on and off (docs/design.md §3.2).
func TestAuthChainCombinations(t *testing.T) {
	for _, mode := range []string{"all", "first"} {
		for _, anon := range []bool{false, true} {
			for _, b1 := range decisive {
				for _, b2 := range decisive {
					name := fmt.Sprintf("%s/anon=%v/%v+%v", mode, anon, b1, b2)
					t.Run(name, func(t *testing.T) {
						allow, codes := expectAuth(mode, anon, b1, b2)
						m := mustNew(t, Options{Plugins: twoPlugins(b1, b2),
							Auth: AuthOptions{Plugins: []string{"p1", "p2"}, Mode: mode, AllowAnonymous: anon}})
						res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{ClientID: "c", ProtocolVersion: 5}, []byte("pw"))
						if res.Allow != allow {
							t.Fatalf("allow %v, want %v (%+v)", res.Allow, allow, res)
						}
						if !allow && !slices.Contains(codes, res.ReasonCode) {
							t.Fatalf("reason code %#x, want one of %#x", res.ReasonCode, codes)
						}
					})
				}
			}
		}
	}
}

// expectAuth is the oracle: whether the client is accepted and, if not, the
// CONNACK codes the rules allow (mode all takes whichever deny comes first).
func expectAuth(mode string, anon bool, bs ...behaviour) (bool, []byte) {
	var denies []byte
	allowed := false
	for _, b := range bs {
		r, outage := effective(b)
		code := byte(denyReason)
		if outage {
			code = byte(packets.ServerUnavailable)
		}
		switch {
		case r == Deny && mode == "first" && !allowed && len(denies) == 0:
			return false, []byte{code}
		case r == Deny:
			denies = append(denies, code)
		case r == Allow && mode == "first" && len(denies) == 0:
			return true, nil
		case r == Allow:
			allowed = true
		}
	}
	switch {
	case len(denies) > 0:
		return false, denies
	case allowed || anon:
		return true, nil
	}
	return false, []byte{byte(packets.NotAuthorized)}
}

// Every combination across two plugins for each topic action, with
// topic-check.default allow and deny.
func TestTopicChainCombinations(t *testing.T) {
	for _, act := range []mqtt.Action{mqtt.ActionSubscribe, mqtt.ActionPublish, mqtt.ActionReceive} {
		for _, def := range []Result{Allow, Deny} {
			for _, b1 := range decisive {
				for _, b2 := range decisive {
					t.Run(fmt.Sprintf("%v/default=%v/%v+%v", act, def, b1, b2), func(t *testing.T) {
						allow, code := expectTopic(act, def, b1, b2)
						m := mustNew(t, Options{Plugins: twoPlugins(b1, b2),
							Topics: TopicOptions{Enable: true, Plugins: []string{"p1", "p2"}, Default: def}})
						res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{ClientID: "c"},
							mqtt.TopicRequest{Action: act, Topic: "a/b", QoS: 1})
						if res.Allow != allow || (!allow && res.ReasonCode != code) {
							t.Fatalf("got %+v, want allow %v code %#x", res, allow, code)
						}
					})
				}
			}
		}
	}
}

// expectTopic is the oracle for the topic chain, which asks in order and
// stops at the first deny.
func expectTopic(act mqtt.Action, def Result, bs ...behaviour) (bool, byte) {
	allowed := def == Allow
	for _, b := range bs {
		switch r, outage := effective(b); {
		case r == Deny && outage:
			return false, byte(packets.UnspecifiedError)
		case r == Deny && act == mqtt.ActionReceive:
			return false, byte(packets.NotAuthorized)
		case r == Deny:
			return false, denyReason
		case r == Allow:
			allowed = true
		}
	}
	if !allowed {
		return false, 0
	}
	return true, 0
}

// A panic, an error and a timeout go to the plugin's on-error policy; stale
// means deny once the error reaches the chain, and so does ErrStale whatever
// the policy says.
func TestOnErrorPolicies(t *testing.T) {
	for _, tc := range []struct {
		b      behaviour
		policy OnError
		want   Result // Ignore: the chain falls through to the anonymous rule
	}{
		{bPanic, OnErrorDeny, Deny},
		{bPanic, OnErrorAllow, Allow},
		{bPanic, OnErrorIgnore, Ignore},
		{bPanic, OnErrorStale, Deny},
		{bError, OnErrorAllow, Allow},
		{bError, OnErrorIgnore, Ignore},
		{bError, OnErrorStale, Deny},
		{bTimeout, OnErrorAllow, Allow},
		{bTimeout, OnErrorIgnore, Ignore},
		{bStale, OnErrorAllow, Deny},
		{bStale, OnErrorStale, Deny},
	} {
		t.Run(tc.b.String()+"/"+tc.policy.String(), func(t *testing.T) {
			m := mustNew(t, Options{
				Plugins: map[string]PluginSpec{"p": {Plugin: &scripted{b: tc.b}, OnError: tc.policy, Timeout: testTimeout}},
				Auth:    AuthOptions{Plugins: []string{"p"}},
				Topics:  TopicOptions{Enable: true, Plugins: []string{"p"}, Default: Allow},
			})
			ci := &mqtt.ClientInfo{ClientID: "c", ProtocolVersion: 5}
			auth := m.Hooks().Auth.Authenticate(context.Background(), ci, nil)
			topic := m.Hooks().Topics.CheckTopic(context.Background(), ci, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"})
			// Anonymous is off and the default is allow, so ignore shows as
			// a refused CONNECT and an allowed topic.
			wantAuth, wantTopic := tc.want == Allow, tc.want != Deny
			if auth.Allow != wantAuth || topic.Allow != wantTopic {
				t.Fatalf("auth %+v, topic %+v; want allow %v and %v", auth, topic, wantAuth, wantTopic)
			}
			if tc.want == Deny && (auth.ReasonCode != byte(packets.ServerUnavailable) || topic.ReasonCode != byte(packets.UnspecifiedError)) {
				t.Fatalf("outage codes %#x, %#x; want 0x88 (CONNACK) and 0x80 (PUBACK)", auth.ReasonCode, topic.ReasonCode)
			}
		})
	}
}

// The CONNACK code of a deny: the plugin's when CONNACK may carry it, else
// 0x87, whatever the client speaks: the broker maps it for a 3.1.1 client
// (0x04 for bad credentials, 0x05 for everything else).
func TestAuthDenyCodes(t *testing.T) {
	for _, tc := range []struct {
		code    byte
		version byte
		want    packets.ReasonCode
	}{
		{0x86, 5, packets.BadUsernameOrPassword},
		{0x8A, 5, packets.Banned},
		{0, 5, packets.NotAuthorized},
		{0x04, 5, packets.NotAuthorized},                  // below 0x80: not a failure
		{0x8E, 5, packets.NotAuthorized},                  // session taken over: not a CONNACK code
		{0x86, 4, packets.BadUsernameOrPassword},          // sent as 0x04
		{0x8A, 4, packets.Banned},                         // sent as 0x05
		{byte(packets.ServerBusy), 4, packets.ServerBusy}, // sent as 0x05, not ConnackCodeV3's 0x03
	} {
		t.Run(fmt.Sprintf("%#x/v%d", tc.code, tc.version), func(t *testing.T) {
			p := authFunc(func(context.Context, *AuthRequest) (Decision, error) {
				return Decision{Result: Deny, ReasonCode: tc.code, Reason: "why"}, nil
			})
			m := mustNew(t, Options{Plugins: map[string]PluginSpec{"p": {Plugin: p}}, Auth: AuthOptions{Plugins: []string{"p"}}})
			res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{ProtocolVersion: tc.version}, nil)
			if res.Allow || res.ReasonCode != byte(tc.want) || res.Reason != "why" {
				t.Fatalf("got %+v, want code %#x with the plugin's reason", res, byte(tc.want))
			}
		})
	}
}

// Topic deny codes: the plugin's when the acknowledgement may carry it.
func TestTopicDenyCodes(t *testing.T) {
	for _, tc := range []struct {
		act  mqtt.Action
		code byte
		want packets.ReasonCode
	}{
		{mqtt.ActionSubscribe, 0xA2, 0xA2}, // wildcard subscriptions not supported
		{mqtt.ActionSubscribe, 0x90, packets.NotAuthorized},
		{mqtt.ActionPublish, 0x90, 0x90}, // topic name invalid
		{mqtt.ActionPublish, 0xA2, packets.NotAuthorized},
		{mqtt.ActionReceive, 0x90, packets.NotAuthorized},
	} {
		t.Run(fmt.Sprintf("%v/%#x", tc.act, tc.code), func(t *testing.T) {
			p := topicFunc(func(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
				return Decision{Result: Deny, ReasonCode: tc.code, Reason: "why"}, nil
			})
			m := mustNew(t, Options{Plugins: map[string]PluginSpec{"p": {Plugin: p}}, Topics: TopicOptions{Enable: true, Plugins: []string{"p"}}})
			res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: tc.act, Topic: "t"})
			if res.Allow || res.ReasonCode != byte(tc.want) || res.Reason != "why" {
				t.Fatalf("got %+v, want code %#x", res, byte(tc.want))
			}
		})
	}
}

// With topic-check on and no plugin, every check answers the default; an
// unknown action (a broker bug) is denied, not a panic.
func TestTopicChainNoPlugins(t *testing.T) {
	for _, def := range []Result{Ignore, Allow, Deny} {
		m := mustNew(t, Options{Topics: TopicOptions{Enable: true, Default: def}})
		for _, act := range []mqtt.Action{mqtt.ActionSubscribe, mqtt.ActionPublish, mqtt.ActionReceive} {
			res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: act, Topic: "t"})
			if res.Allow != (def == Allow) {
				t.Fatalf("default %v, %v: got %+v", def, act, res)
			}
		}
		if res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: 9}); res.Allow {
			t.Fatalf("unknown action allowed: %+v", res)
		}
	}
}

// Mode all asks concurrently: neither plugin answers until both have been
// asked. A deny refuses at once and cancels the plugin still at work.
func TestAuthAllConcurrentAndCancels(t *testing.T) {
	asked := make(chan string, 2)
	both := make(chan struct{})
	cancelled := make(chan error, 1)
	slow := authFunc(func(ctx context.Context, _ *AuthRequest) (Decision, error) {
		asked <- "slow"
		<-ctx.Done()
		cancelled <- ctx.Err()
		return Decision{}, ctx.Err()
	})
	denier := authFunc(func(ctx context.Context, _ *AuthRequest) (Decision, error) {
		asked <- "denier"
		<-both
		return Decision{Result: Deny, ReasonCode: 0x86}, nil
	})
	reg := prometheus.NewPedanticRegistry()
	m := mustNew(t, Options{Registerer: reg,
		Plugins: map[string]PluginSpec{"slow": {Plugin: slow}, "denier": {Plugin: denier}},
		Auth:    AuthOptions{Plugins: []string{"slow", "denier"}}})
	done := make(chan mqtt.AuthResult, 1)
	go func() {
		done <- m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{ProtocolVersion: 5}, []byte("pw"))
	}()
	wait(t, "first plugin asked", asked)
	wait(t, "second plugin asked while the first still works", asked)
	close(both)
	if res := wait(t, "the chain's answer", done); res.Allow || res.ReasonCode != 0x86 {
		t.Fatalf("got %+v, want deny 0x86", res)
	}
	if err := wait(t, "the slow plugin's cancellation", cancelled); err != context.Canceled {
		t.Fatalf("slow plugin's ctx ended with %v, want canceled", err)
	}
	waitCount(t, m.metrics.decisions.WithLabelValues("slow", "authenticate", "canceled"), 1)
	if got := counterValue(m.metrics.chain.WithLabelValues("authenticate", "deny")); got != 1 {
		t.Fatalf("chain deny count %v, want 1", got)
	}
}

// waitCount waits for a counter that a background goroutine bumps.
func waitCount(t *testing.T, c prometheus.Metric, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("counter to reach %v", want), func() bool { return counterValue(c) == want })
}

// One auth plugin runs on the caller's goroutine (no goroutine per CONNECT)
// in either mode.
func TestAuthOnePluginInline(t *testing.T) {
	for _, mode := range []string{"all", "first"} {
		var stack string
		p := authFunc(func(context.Context, *AuthRequest) (Decision, error) {
			buf := make([]byte, 8<<10)
			stack = string(buf[:runtime.Stack(buf, false)])
			return Decision{Result: Allow}, nil
		})
		m := mustNew(t, Options{Plugins: map[string]PluginSpec{"p": {Plugin: p}}, Auth: AuthOptions{Plugins: []string{"p"}, Mode: mode}})
		if res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{}, nil); !res.Allow {
			t.Fatalf("%s: got %+v", mode, res)
		}
		if !strings.Contains(stack, "TestAuthOnePluginInline") {
			t.Fatalf("%s: plugin ran on another goroutine:\n%s", mode, stack)
		}
	}
}

// Mode first asks in order and stops at the first answer that is not
// ignore: later plugins are not asked.
func TestAuthFirstStopsEarly(t *testing.T) {
	a, b, c := &scripted{b: bIgnore}, &scripted{b: bAllow}, &scripted{b: bDeny}
	m := mustNew(t, Options{
		Plugins: map[string]PluginSpec{"a": {Plugin: a}, "b": {Plugin: b}, "c": {Plugin: c}},
		Auth:    AuthOptions{Plugins: []string{"a", "b", "c"}, Mode: "first"}})
	if res := m.Hooks().Auth.Authenticate(context.Background(), &mqtt.ClientInfo{}, nil); !res.Allow {
		t.Fatalf("got %+v", res)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 1 || c.calls.Load() != 0 {
		t.Fatalf("calls %d %d %d, want 1 1 0", a.calls.Load(), b.calls.Load(), c.calls.Load())
	}
}

// Each plugin answer is counted under its result; failures under error,
// timeout or panic, not under what the policy made of them.
func TestDecisionMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	specs := map[string]PluginSpec{}
	var aliases []string
	for _, b := range []behaviour{bAllow, bIgnore, bError, bTimeout, bPanic} {
		specs[b.String()] = PluginSpec{Plugin: &scripted{b: b}, OnError: OnErrorIgnore, Timeout: testTimeout}
		aliases = append(aliases, b.String())
	}
	m := mustNew(t, Options{Registerer: reg, Plugins: specs, Topics: TopicOptions{Enable: true, Plugins: aliases}})
	for range 2 {
		m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "t"})
	}
	for _, b := range []behaviour{bAllow, bIgnore, bError, bTimeout, bPanic} {
		if got := counterValue(m.metrics.decisions.WithLabelValues(b.String(), "receive", b.String())); got != 2 {
			t.Errorf("plugin %s: %v answers counted as %s, want 2", b, got, b)
		}
	}
	if got := counterValue(m.metrics.chain.WithLabelValues("receive", "allow")); got != 2 {
		t.Fatalf("chain allow count %v, want 2", got)
	}
	if n := gatheredSeries(t, reg, "mqttd_plugin_decisions_total"); n == 0 {
		t.Fatal("no decision series gathered from the registry")
	}
}

// deadlineProbe records whether its check ran under a deadline.
type deadlineProbe struct {
	self     bool
	deadline atomic.Bool
}

func (d *deadlineProbe) TimesOwnCalls() bool { return d.self }
func (d *deadlineProbe) FilterTopic(ctx context.Context, _ *mqtt.ClientInfo, _ mqtt.TopicRequest) (Decision, error) {
	_, ok := ctx.Deadline()
	d.deadline.Store(ok)
	return Decision{Result: Allow}, nil
}

// A plugin that times its own calls (SelfTimed) gets no timeout from the
// framework; one that does not, or says it does not, gets its spec's.
func TestSelfTimedPluginsGetNoFrameworkTimeout(t *testing.T) {
	for _, self := range []bool{false, true} {
		p := &deadlineProbe{self: self}
		m := mustNew(t, Options{Plugins: map[string]PluginSpec{"p": {Plugin: p, Timeout: time.Hour}},
			Topics: TopicOptions{Enable: true, Plugins: []string{"p"}}})
		res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"})
		if !res.Allow || p.deadline.Load() == self {
			t.Errorf("TimesOwnCalls %v: allowed %v, ran under a deadline %v; want allowed, deadline %v", self, res.Allow, p.deadline.Load(), !self)
		}
	}
}
