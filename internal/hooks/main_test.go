package hooks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long a test waits for something that should happen at once:
// a failure bound, never a measurement.
const bound = 10 * time.Second

// behaviour is how a scripted plugin answers every question.
type behaviour int

const (
	bAllow behaviour = iota
	bDeny
	bIgnore
	bError
	bTimeout // waits for its context, which only the plugin's timeout ends
	bPanic
	bStale // fails with ErrStale, as a webhook with nothing cached
)

var behaviourNames = [...]string{"allow", "deny", "ignore", "error", "timeout", "panic", "stale"}

func (b behaviour) String() string { return behaviourNames[b] }

// denyReason is what scripted plugins give with a deny: valid in CONNACK,
// PUBACK and SUBACK alike.
const denyReason = 0x97 // quota exceeded

func (b behaviour) answer(ctx context.Context) (Decision, error) {
	switch b {
	case bAllow:
		return Decision{Result: Allow}, nil
	case bDeny:
		return Decision{Result: Deny, ReasonCode: denyReason, Reason: "scripted deny"}, nil
	case bError:
		return Decision{}, errors.New("scripted error")
	case bTimeout:
		<-ctx.Done()
		return Decision{}, ctx.Err()
	case bPanic:
		panic("scripted panic")
	case bStale:
		return Decision{}, ErrStale
	}
	return Decision{Result: Ignore}, nil
}

// scripted is a plugin with both decision capabilities, answering by its
// behaviour, and counting its calls.
type scripted struct {
	b     behaviour
	calls atomic.Int32
}

func (s *scripted) Authenticate(ctx context.Context, _ *AuthRequest) (Decision, error) {
	s.calls.Add(1)
	return s.b.answer(ctx)
}

func (s *scripted) FilterTopic(ctx context.Context, _ *mqtt.ClientInfo, _ mqtt.TopicRequest) (Decision, error) {
	s.calls.Add(1)
	return s.b.answer(ctx)
}

// authFunc and topicFunc adapt functions to one capability each.
type authFunc func(context.Context, *AuthRequest) (Decision, error)

func (f authFunc) Authenticate(ctx context.Context, r *AuthRequest) (Decision, error) {
	return f(ctx, r)
}

type topicFunc func(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error)

func (f topicFunc) FilterTopic(ctx context.Context, c *mqtt.ClientInfo, r mqtt.TopicRequest) (Decision, error) {
	return f(ctx, c, r)
}

// recorder is an EventPlugin keeping every event it is handed.
type recorder struct {
	mask mqtt.EventMask
	mu   sync.Mutex
	evs  []*Event
}

func (r *recorder) Wants() mqtt.EventMask { return r.mask }
func (r *recorder) Event(e *Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}
func (r *recorder) events() []*Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// lifecycle is a plugin recording Start and Close calls.
type lifecycle struct {
	startErr error
	starts   atomic.Int32
	closes   atomic.Int32
}

func (l *lifecycle) Start(context.Context) error { l.starts.Add(1); return l.startErr }
func (l *lifecycle) Close(context.Context) error { l.closes.Add(1); return nil }

// eventsOf is a mask of the given types.
func eventsOf(ts ...mqtt.EventType) mqtt.EventMask {
	var m mqtt.EventMask
	for _, t := range ts {
		m = m.With(t)
	}
	return m
}

// mustNew builds a Manager or fails the test, and closes it at cleanup.
func mustNew(t testing.TB, opts Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		m.Close(ctx)
	})
	return m
}

// wait fails the test unless ch yields within bound.
func wait[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// counterValue reads a counter.
func counterValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// gatheredSeries counts the series of one metric family in reg.
func gatheredSeries(t testing.TB, reg prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
