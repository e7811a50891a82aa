package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Manager: the plugins by alias and which of them
// authenticate and check topics (docs/design.md §3.1).
type Options struct {
	Broker     string                // node name, stamped on every event
	Plugins    map[string]PluginSpec // alias -> plugin
	Auth       AuthOptions           // the authenticate chain (config auth:)
	Topics     TopicOptions          // the topic_filtering chain (config topic-check:)
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
}

// PluginSpec is one alias: the plugin and how the chains treat it.
type PluginSpec struct {
	Plugin  Plugin         // the implementation: any of AuthPlugin, TopicFilter, EventPlugin
	OnError OnError        // what an error, panic or timeout becomes
	Timeout time.Duration  // per decision; 0 = none (the plugin must honour ctx); unused for a SelfTimed plugin
	Config  map[string]any // free-form; reaches the plugin in broker_pre_start
	Type    string         // the plugin's type, for messages ("webhook", "acl-file")
	// Shadow: in the auth and topic chains that list it, the plugin is
	// asked beside the enforcing plugins and its answers only counted
	// against theirs (see shadow.go); ShadowMaxInflight bounds its
	// questions in flight (0: 64), beyond which checks are not put to it.
	Shadow            bool
	ShadowMaxInflight int
}

// AuthOptions is the auth section.
type AuthOptions struct {
	Plugins        []string         // aliases that authenticate, in order
	Mode           string           // "all" (default: asked concurrently, any deny wins) or "first" (ordered, first non-ignore wins)
	AllowAnonymous bool             // accept a client no plugin allowed or denied
	RateLimit      RateLimitOptions // bounds the logins of each source address
}

// TopicOptions is the topic-check section.
type TopicOptions struct {
	Enable  bool     // false: no topic checks (turned off by a Reload: every check allows)
	Plugins []string // aliases that filter topics, in order
	Default Result   // when every plugin ignores: Allow or Deny (the zero value means Deny)
}

// retireTimeout bounds how long plugins a Reload dropped may take to close.
const retireTimeout = 30 * time.Second

// Manager owns the plugins and presents them to the broker as mqtt.Hooks.
// Build it with New, call Start before the broker starts and Close after
// the broker has closed; Reload swaps the plugins while clients stay
// connected.
type Manager struct {
	log      *slog.Logger
	broker   string
	metrics  *metrics
	chains   *chainCounters
	idPrefix string
	seq      atomic.Uint64

	// Fixed at New: the broker reads it once. (What Events wants it
	// re-reads every second, so that may change.)
	hooks mqtt.Hooks

	cur atomic.Pointer[state]

	// limits outlives the states: a Reload must not hand a source that
	// spent its failed logins a fresh budget.
	limits     *loginLimiter
	limitedLog throttle

	mu      sync.Mutex // serialises Start, Reload and Close
	started bool
	closed  bool
	retired sync.WaitGroup // plugins a Reload dropped, closing
}

// New validates opts and builds the plugin registry. Errors name the config
// key at fault.
func New(opts Options) (*Manager, error) {
	m := &Manager{log: opts.Logger, broker: opts.Broker, idPrefix: newIDPrefix()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if m.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	m.chains = m.metrics.forChains()
	m.limits = newLoginLimiter(opts.Auth.RateLimit)
	st, err := m.compile(opts)
	if err != nil {
		return nil, err
	}
	m.cur.Store(st)
	m.metrics.drops.join(m)
	// A capability nothing needs stays nil so the broker's hot path skips
	// it; that is also why a Reload cannot add one (see Reload).
	if len(st.auth) > 0 || len(st.shadowAuth) > 0 || !st.anonymous {
		m.hooks.Auth = &authChain{m}
	}
	if st.topicsOn {
		m.hooks.Topics = &topicChain{m}
	}
	if st.mask != 0 {
		m.hooks.Events = &eventFan{m}
	}
	return m, nil
}

// Hooks is the seam to hand to mqtt.Options. What it holds is decided at New:
// Auth is nil when no plugin authenticates and anonymous clients are
// allowed, Topics is nil when topic-check is off, Events is nil when no
// plugin wants any event.
func (m *Manager) Hooks() mqtt.Hooks { return m.hooks }

// acquire returns the current state, held against retirement until release.
func (m *Manager) acquire() *state {
	for {
		st := m.cur.Load()
		st.hold()
		// Still current after taking the hold: a Reload that swaps now
		// sees the hold and leaves the closing to our release.
		if m.cur.Load() == st {
			return st
		}
		st.release()
	}
}

// Start runs every plugin's Start (hooks.Starter), in alias order, before
// the broker starts. On error the broker must not start; call Close to
// release what did start.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("hooks: Start after Close; build a new Manager")
	}
	m.started = true
	_, err := startAll(ctx, m.cur.Load().distinct())
	return err
}

// startAll starts the Starters among ps, stopping at the first error; it
// returns the plugins it started.
func startAll(ctx context.Context, ps []*plugin) ([]*plugin, error) {
	var done []*plugin
	for _, p := range ps {
		s, ok := p.value.(Starter)
		if !ok {
			continue
		}
		if err := s.Start(ctx); err != nil {
			return done, fmt.Errorf("plugins.%s (type %s) did not start: %w", p.alias, p.kind, err)
		}
		done = append(done, p)
	}
	return done, nil
}

// closeAll closes the Closers among ps concurrently, so one slow drain does
// not eat the others' time, and joins their errors.
func closeAll(ctx context.Context, ps []*plugin) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		if c, ok := p.value.(Closer); ok {
			wg.Go(func() {
				if err := c.Close(ctx); err != nil {
					errs[i] = fmt.Errorf("plugins.%s (type %s): close: %w", p.alias, p.kind, err)
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every plugin (hooks.Closer). Call it after the broker's
// Close returned, so broker_post_shutdown has reached every sink; ctx
// bounds how long sinks may take to drain their queues. It also waits for
// plugins an earlier Reload dropped.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := closeAll(ctx, m.cur.Load().distinct())
	m.metrics.drops.leave(m) // a closed plugin's count stands still: stop exporting it
	done := make(chan struct{})
	go func() { m.retired.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("hooks: plugins dropped by a reload are still closing: %w", ctx.Err()))
	}
	return err
}

// Reload replaces the plugins and chains with those of opts, all at once,
// without touching connected clients: a check under way finishes on the
// plugins it started with, and plugins opts no longer has are closed once
// no check uses them. New plugins are started (when Start has run) and
// those with a config block get broker_pre_start with it.
//
// Some changes need a restart, and Reload refuses them, changing nothing:
// adding authentication, topic-check or event sinks where New had none
// (the broker reads Hooks once, at start, and holds no hook to call).
// Event types may change freely once New had a sink: the broker re-reads
// what the sinks want every second. Broker, Logger and Registerer keep
// their values from New. On any error nothing changes, and
// the plugins of opts remain the caller's to close (those Reload started
// it has closed again).
func (m *Manager) Reload(opts Options) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("hooks: Reload after Close")
	}
	next, err := m.compile(opts)
	if err != nil {
		return err
	}
	if err := m.fits(next); err != nil {
		return err
	}
	old := m.cur.Load()
	var fresh []*plugin // plugin values the old state did not have
	for _, p := range next.distinct() {
		if !old.has(p.value) {
			fresh = append(fresh, p)
		}
	}
	if m.started {
		ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
		started, err := startAll(ctx, fresh)
		if err != nil {
			closeAll(ctx, started)
			cancel()
			return err
		}
		cancel()
	}
	m.cur.Store(next)
	m.limits.configure(opts.Auth.RateLimit)

	var gone []*plugin
	for _, p := range old.distinct() {
		if !next.has(p.value) {
			gone = append(gone, p)
		}
	}
	m.retired.Add(1)
	old.retire(func() { go m.closeRetired(gone) })
	for _, p := range old.plugins {
		if !slices.ContainsFunc(next.plugins, func(q *plugin) bool { return q.alias == p.alias }) {
			m.metrics.forget(p.alias)
		}
	}
	m.announce(next, fresh)
	return nil
}

// closeRetired closes plugins a Reload dropped, once no call uses them.
func (m *Manager) closeRetired(gone []*plugin) {
	defer m.retired.Done()
	ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
	defer cancel()
	if err := closeAll(ctx, gone); err != nil {
		m.log.Warn("closing plugins dropped by a reload", "err", err)
	}
}

// announce sends broker_pre_start, with its config block, to each newly
// loaded sink that has one: it would otherwise never see its config.
func (m *Manager) announce(st *state, fresh []*plugin) {
	var ev *Event
	for _, p := range st.sinks {
		if p.config == nil || !slices.Contains(fresh, p) {
			continue
		}
		if ev == nil {
			pre := &mqtt.Event{Type: mqtt.EventBrokerPreStart}
			ev = m.own(pre, m.stamp(pre))
		}
		p.deliver(withConfig(ev, p.config))
	}
}

// fits reports why next cannot replace the running state without a
// restart, if it cannot.
func (m *Manager) fits(next *state) error {
	if m.hooks.Auth == nil && (len(next.auth) > 0 || len(next.shadowAuth) > 0 || !next.anonymous) {
		return errors.New("auth: mqttd started with no authentication (no auth.plugins, anonymous allowed); " +
			"adding auth.plugins or setting auth.allow-anonymous: false needs a restart")
	}
	if m.hooks.Topics == nil && next.topicsOn {
		return errors.New("topic-check.enable: mqttd started with topic-check off; turning it on needs a restart")
	}
	// broker_pre_start is past by then; announce delivers config blocks.
	if m.hooks.Events == nil && next.mask&^mqtt.EventMask(0).With(mqtt.EventBrokerPreStart) != 0 {
		var who []string
		for _, p := range next.sinks {
			who = append(who, p.alias)
		}
		return fmt.Errorf("plugins: %s want events, and mqttd started with no plugin that wants any; "+
			"adding the first event plugin needs a restart", strings.Join(who, ", "))
	}
	return nil
}
