package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/metrics/striped"
	"github.com/mqttd/mqttd/internal/webhook/batch"
	"github.com/mqttd/mqttd/internal/webhook/cache"
	"github.com/mqttd/mqttd/internal/webhook/spool"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// Plugin is one HTTP plugin alias. It implements hooks.AuthPlugin,
// hooks.TopicFilter, hooks.EventPlugin, hooks.Starter and hooks.Closer; the
// framework uses whichever its config asks for.
type Plugin struct {
	opts   Options
	client *client
	clock  func() time.Time

	keys   *cache.Keyer
	cache  *cache.Cache[hooks.Decision] // nil when Cache.Size is 0
	memo   *topicMemo                   // in front of cache for topic checks; nil with it
	policy cache.Policy

	auth, topic *endpoint
	flights     *flights
	stopCalls   context.CancelFunc // ends decision calls still running at Close's deadline
	testMissed  func()             // tests only: runs between a cache miss and joining the flight

	metrics               *metricSet
	hits                  *striped.Counter
	misses, stale, evicts prometheus.Counter

	events *batch.Pipeline
	spool  *spool.Spool  // durable events only
	mask   atomic.Uint32 // mqtt.EventMask: what Event lets through (the manifest narrows it)
	held   pending       // events waiting for the manifest (events not in the config)
	// known is closed once the events the plugin wants are known (the
	// manifest answered, or said it has none); the spool of a durable
	// plugin without events in its config is delivered only then.
	known     chan struct{}
	knownOnce sync.Once
	manifest  atomic.Pointer[wire.Manifest]
	ready     atomic.Bool

	bgCtx     context.Context // ends at Close: the manifest fetch runs under it
	bgStop    context.CancelFunc
	bg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

// endpoint is one decision endpoint and its breaker.
type endpoint struct {
	name, path string
	breaker    *gobreaker.CircuitBreaker[verdict]
	slots      *slots // bounds concurrent calls; nil for an endpoint without a bound
	m          endpointMetrics
}

// New builds the plugin for opts. It makes no request: Start fetches the
// manifest, and a plugin that is down costs its callers only their
// on-error policy. Close releases what New starts.
func New(opts Options) (*Plugin, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		opts:   o,
		client: c,
		clock:  time.Now,
		keys:   cache.NewKeyer(),
		policy: cache.Policy{TTL: o.Cache.TTL, DenyTTL: o.Cache.DenyTTL, MaxTTL: o.Cache.MaxTTL, Jitter: o.Cache.Jitter},
	}
	if o.Cache.Size > 0 {
		if p.cache, err = cache.New[hooks.Decision](o.Cache.Size); err != nil {
			return nil, fmt.Errorf("webhook %s: cache: %w", o.Alias, err)
		}
		p.memo = newTopicMemo(o.Cache.Size, func() uint64 { return p.hits.Value() })
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	if err := p.openSpool(); err != nil {
		return nil, err
	}
	if p.metrics, err = acquireMetrics(reg, p); err != nil {
		p.closeSpool()
		return nil, fmt.Errorf("webhook %s: metrics: %w", o.Alias, err)
	}
	p.hits = p.metrics.hits.WithLabelValues(o.Alias)
	p.misses = p.metrics.misses.WithLabelValues(o.Alias)
	p.stale = p.metrics.stale.WithLabelValues(o.Alias)
	p.evicts = p.metrics.evicts.WithLabelValues(o.Alias)
	p.auth = p.newEndpoint(epAuthenticate)
	p.auth.slots = newSlots(o.MaxConcurrent, p.metrics.slotWaits.WithLabelValues(o.Alias))
	p.topic = p.newEndpoint(epTopicFiltering)

	root, stop := context.WithCancel(context.Background())
	p.flights, p.stopCalls = newFlights(root), stop
	p.bgCtx, p.bgStop = context.WithCancel(context.Background())
	p.mask.Store(uint32(o.wantedEvents()))
	p.known = make(chan struct{})
	if p.spool != nil && o.Events == nil {
		// Spooled events, from before a restart or spilled while the
		// manifest was awaited, may be of types the plugin does not want:
		// they wait for its manifest, and pass through it.
		p.opts.Queue.Gate, p.opts.Queue.Keep = p.known, p.wantsEncoded
	}
	p.events = batch.New(p.opts.Queue, p.encodeEvent, p.sendEvents)
	p.held.limit = max(o.Queue.QueueSize, 1)
	if o.Queue.QueueSize <= 0 {
		p.held.limit = 10000 // batch's default
	}
	p.held.on.Store(o.Events == nil)
	if p.spool != nil {
		p.held.spool = p.events
	}
	return p, nil
}

func (p *Plugin) newEndpoint(name string) *endpoint {
	ep := &endpoint{name: name, path: "/" + name, m: p.metrics.endpoint(p.opts.Alias, name)}
	ep.breaker = newBreaker(p.opts.Alias+"/"+name, p.opts.Breaker, func(from, to gobreaker.State) {
		p.metrics.transitions.WithLabelValues(p.opts.Alias, name, stateName(to)).Inc()
		// An opening is a warning: on-error answers every call for open-for.
		level := slog.LevelInfo
		if to == gobreaker.StateOpen {
			level = slog.LevelWarn
		}
		p.opts.Logger.Log(context.Background(), level, "webhook circuit breaker changed state",
			"endpoint", name, "url", p.opts.URL+ep.path, "from", stateName(from), "to", stateName(to))
	})
	return ep
}

func (p *Plugin) endpoints() []*endpoint { return []*endpoint{p.auth, p.topic} }

// Alias is the plugin's name in the config, which labels its metrics,
// its log lines and its entry in the admin API.
func (p *Plugin) Alias() string { return p.opts.Alias }

// Ready reports whether the plugin service has answered a request
// properly (its manifest, or a decision), so /readyz can hold traffic off
// until an authenticating plugin is really there.
func (p *Plugin) Ready() bool { return p.ready.Load() }

// Manifest returns the plugin's manifest, once it has answered with one.
func (p *Plugin) Manifest() (wire.Manifest, bool) {
	if m := p.manifest.Load(); m != nil {
		return *m, true
	}
	return wire.Manifest{}, false
}

// Start fetches the manifest in the background, retrying while the plugin
// comes up. It waits at most one timeout for the first answer, so a plugin
// that is up narrows its events before the broker's first one, and never
// fails: a plugin that is down must not keep the broker from starting.
// Calls after the first do nothing; Start must not race Close.
func (p *Plugin) Start(ctx context.Context) error {
	first := make(chan struct{})
	started := false
	p.startOnce.Do(func() {
		started = true
		p.bg.Go(func() { p.fetchManifest(p.bgCtx, first) })
	})
	if !started {
		return nil
	}
	t := time.NewTimer(p.opts.Timeout)
	defer t.Stop()
	select {
	case <-first:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// Close stops the manifest fetch, lets running decision calls finish
// until ctx ends (then cancels them), drains the event queue within ctx,
// and releases connections and metrics. Later calls return the first
// result.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.bgStop()
		p.bg.Wait()
		done := make(chan struct{})
		go func() {
			p.flights.close()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			p.stopCalls()
			<-done
		}
		p.stopCalls()
		if p.memo != nil {
			p.memo.close()
		}
		if p.held.spill() { // durable: held events wait on disk for the next start
			p.opts.Logger.Info("webhook events held for the manifest spooled at shutdown: the plugin never answered GET /manifest",
				"events", p.held.spilled.Load())
		}
		if n := p.held.drop(); n > 0 {
			p.opts.Logger.Warn("webhook events held for the manifest dropped at shutdown: the plugin never answered GET /manifest", "events", n)
		}
		p.closeErr = errors.Join(p.events.Close(ctx), p.closeSpool())
		p.metrics.release(p, p.events.Stats())
		p.client.close()
	})
	return p.closeErr
}

// cacheLen is the number of cached decisions (0 without a cache).
func (p *Plugin) cacheLen() int {
	if p.cache == nil {
		return 0
	}
	return p.cache.Len()
}

// eventStats are the event pipeline's counters.
func (p *Plugin) eventStats() batch.Stats {
	st := p.events.Stats()
	st.Queued += p.held.held()
	st.Dropped.Overflow += p.held.overflow.Load()
	st.Dropped.Shutdown += p.held.shutdown.Load()
	return st
}
