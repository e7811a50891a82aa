package hooks

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// policy is an in-process plugin answering every authenticate and topic
// check with result, after waiting for release (when set) or its ctx.
type policy struct {
	result  Result
	release chan struct{}
}

func (p *policy) answer(ctx context.Context) (Decision, error) {
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			return Decision{}, ctx.Err()
		}
	}
	return Decision{Result: p.result, Reason: "the candidate policy says so"}, nil
}

func (p *policy) Authenticate(ctx context.Context, _ *AuthRequest) (Decision, error) {
	return p.answer(ctx)
}
func (p *policy) FilterTopic(ctx context.Context, _ *mqtt.ClientInfo, _ mqtt.TopicRequest) (Decision, error) {
	return p.answer(ctx)
}

// syncBuffer is a log sink safe for the shadow goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shadowManager has the enforcing plugin "live" (allow everything) and,
// when candidate is not nil, the shadow "candidate", in both chains.
func shadowManager(t *testing.T, candidate *policy, log *syncBuffer) *Manager {
	plugins := map[string]PluginSpec{"live": {Plugin: &policy{result: Allow}}}
	aliases := []string{"live"}
	if candidate != nil {
		plugins["candidate"] = PluginSpec{Plugin: candidate, Shadow: true, Timeout: time.Minute}
		aliases = append(aliases, "candidate")
	}
	return mustNew(t, Options{Plugins: plugins, Logger: slog.New(slog.NewTextHandler(log, nil)),
		Auth:   AuthOptions{Plugins: aliases},
		Topics: TopicOptions{Enable: true, Plugins: aliases}})
}

// A shadow plugin that disagrees with everything is asked about every
// check, counted per action, sampled in the log with the request, and
// never changes an outcome: the client connects, subscribes, publishes and
// receives as the enforcing plugin allows.
func TestShadowDisagreesWithoutEffect(t *testing.T) {
	log := &syncBuffer{}
	m := shadowManager(t, &policy{result: Deny}, log)
	_, addr := startBroker(t, m)

	c := mustV3(t, addr, "shadowed", true)
	c.sub("shadow/t", 1)
	c.pub("shadow/t", 1, false, "hello")
	if got := c.next(); got != "shadow/t=hello" {
		t.Fatalf("received %q", got)
	}
	for _, act := range []string{"authenticate", "subscribe", "publish", "receive"} {
		waitCount(t, m.metrics.shadow.WithLabelValues("candidate", act, "disagree"), 1)
		if n := counterValue(m.metrics.shadow.WithLabelValues("candidate", act, "agree")); n != 0 {
			t.Errorf("%s: %v agreements counted, want 0", act, n)
		}
	}
	// The shadow is no part of the chain's decisions.
	if n := counterValue(m.metrics.chain.WithLabelValues("publish", "deny")); n != 0 {
		t.Fatalf("%v publish denies by the chain, want 0", n)
	}
	waitFor(t, "a disagreement logged", func() bool {
		s := log.String()
		return bytes.Contains([]byte(s), []byte("shadow plugin disagrees")) && bytes.Contains([]byte(s), []byte("client_id=shadowed"))
	})
}

// A slow shadow adds no latency to the client: CONNECT round trips with a
// shadow that takes a minute to answer (released at the end) against none,
// in the same run.
func TestShadowAddsNoLatency(t *testing.T) {
	const n = 15
	release := make(chan struct{})
	slow := &policy{result: Allow, release: release}
	t.Cleanup(func() { close(release) })
	var log syncBuffer
	measure := func(m *Manager) time.Duration {
		_, addr := startBroker(t, m)
		var took []time.Duration
		for i := range n {
			start := time.Now()
			c := dialV3(t, addr, "lat-"+string(rune('a'+i)), true, "pw")
			took = append(took, time.Since(start))
			if !c.answered || c.ack.Error() != nil {
				t.Fatalf("connect %d refused", i)
			}
			c.Disconnect(0)
		}
		slices.Sort(took)
		return took[n/2]
	}
	without := measure(shadowManager(t, nil, &log))
	m := shadowManager(t, slow, &log)
	with := measure(m)
	ratio := float64(with) / float64(without)
	t.Logf("median CONNECT: %v with a stalled shadow, %v without: ratio %.2f", with, without, ratio)
	if with > 5*time.Second || ratio > 5 {
		t.Fatalf("the shadow slowed clients down: median %v against %v", with, without)
	}
	// Every question is still out (the shadow has not answered).
	if got := counterValue(m.metrics.shadow.WithLabelValues("candidate", "authenticate", "agree")); got != 0 {
		t.Fatalf("%v answers compared before the shadow answered", got)
	}
}
