package hooks

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/metrics/striped"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// plugin is one alias as the chains see it: the capabilities found once, at
// load, and the counters its answers feed.
type plugin struct {
	alias   string
	kind    string // PluginSpec.Type, or the Go type when none was given
	value   Plugin
	onError OnError
	timeout time.Duration
	config  map[string]any // nil when the alias has no config block

	auth   AuthPlugin
	filter TopicFilter
	inline TopicFilterNow   // filter, when it can answer at once
	reuse  TopicFilterReuse // inline, when its answers may be kept per connection
	sink   EventPlugin
	borrow BorrowingEventPlugin // sink, when it takes borrowed events
	wants  mqtt.EventMask

	counters *pluginCounters
	logger   *slog.Logger
	logs     throttle
	shadow   *shadowState // a shadow plugin; nil for an enforcing one
}

// state is one generation of the registry: what New or a Reload built. The
// chains load it once per call, so a call started before a Reload finishes
// on the plugins it started with.
type state struct {
	plugins []*plugin // every alias, sorted

	auth      []*plugin // auth.plugins, in config order, but the shadows
	authFirst bool

	shadowAuth   []*plugin // the shadow plugins of auth.plugins
	shadowTopics []*plugin // the shadow plugins of topic-check.plugins
	anonymous    bool

	topicsOn  bool
	topics    []*plugin // topic-check.plugins, in config order
	topicsNow bool      // every one of them is a TopicFilterNow
	// topicsReuse: every one of them is a TopicFilterReuse, so a
	// connection's repeated check may be answered from its connMemo.
	topicsReuse bool
	gen         uint64 // unique per state: a connMemo entry holds for its state only
	fallback    Result // topic-check.default: Allow or Deny

	sinks []*plugin      // plugins that are EventPlugins
	mask  mqtt.EventMask // union of the sinks' wants

	// Retirement: once a Reload replaced this state and the last call
	// using it returned, idle runs (once) and closes the plugins the new
	// state no longer has. refs is striped: every event takes and drops a
	// hold, on every core at once.
	refs     *striped.Refs
	retired  atomic.Bool
	idleOnce sync.Once
	idle     func()
}

// hold starts one use of st. A call takes its first hold through
// Manager.acquire; a call already holding st may take more and give them
// back on other goroutines (the concurrent auth chain holds st once per
// plugin it asks).
func (st *state) hold() { st.refs.Hold() }

// release ends one use of st, and runs idle if st is retired and this was
// the last.
func (st *state) release() {
	st.refs.Release()
	if st.retired.Load() && st.refs.Held() == 0 {
		st.idleOnce.Do(st.idle)
	}
}

// retire marks st replaced; idle runs now or when its last call returns.
// Reload calls it after swapping in the next state.
//
// Idle never runs while a call uses st. A call uses st only once
// acquire's second look found st still current after its hold, so that
// hold came before Reload's swap, and so before retired was set and
// before any Held that can run idle; Held never reads zero while a hold
// made before it began is still in (striped.Refs.Held says why). Nested
// holds are taken while the caller's first is in, so the same holds.
// A call that loaded st but held it only after the swap sees the new
// state on its second look and releases at once without touching a
// plugin: its hold can delay idle, never hasten it.
//
// And idle does run once the last call returns: the atomics are
// sequentially consistent, so of the last release and the Store below,
// whichever comes second sees the other, and its Held, made after every
// change, is exact: zero.
func (st *state) retire(idle func()) {
	st.idle = idle
	st.retired.Store(true)
	if st.refs.Held() == 0 {
		st.idleOnce.Do(st.idle)
	}
}

// has reports whether the state holds v (under any alias).
func (st *state) has(v Plugin) bool {
	return slices.ContainsFunc(st.plugins, func(p *plugin) bool { return samePlugin(p.value, v) })
}

// distinct lists the state's plugins with each plugin value once, since
// one value may serve several aliases and must be started and closed once.
func (st *state) distinct() []*plugin {
	var out []*plugin
	for _, p := range st.plugins {
		if !slices.ContainsFunc(out, func(q *plugin) bool { return samePlugin(q.value, p.value) }) {
			out = append(out, p)
		}
	}
	return out
}

// samePlugin compares plugin values without panicking on types that ==
// cannot compare (those are never the same plugin).
func samePlugin(a, b Plugin) bool {
	ta := reflect.TypeOf(a)
	return ta != nil && ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// compile validates opts and builds a state from them. Errors name the
// config key at fault.
func (m *Manager) compile(opts Options) (*state, error) {
	st := &state{anonymous: opts.Auth.AllowAnonymous, topicsOn: opts.Topics.Enable, refs: striped.NewRefs()}
	byAlias := make(map[string]*plugin, len(opts.Plugins))
	for _, alias := range slices.Sorted(maps.Keys(opts.Plugins)) {
		p, err := m.load(alias, opts.Plugins[alias])
		if err != nil {
			return nil, err
		}
		byAlias[alias] = p
		st.plugins = append(st.plugins, p)
		if p.sink != nil {
			st.sinks = append(st.sinks, p)
			st.mask |= p.wants
			if p.config != nil {
				// docs/design.md §4: the config block travels in broker_pre_start,
				// sent to such a plugin whether it subscribed or not.
				st.mask = st.mask.With(mqtt.EventBrokerPreStart)
			}
		}
	}
	defined := "none"
	if len(opts.Plugins) > 0 {
		defined = strings.Join(slices.Sorted(maps.Keys(opts.Plugins)), ", ")
	}

	switch opts.Auth.Mode {
	case "", "all":
	case "first":
		st.authFirst = true
	default:
		return nil, fmt.Errorf("auth.mode: %q is not a mode (all, first)", opts.Auth.Mode)
	}
	var err error
	st.auth, err = pick(byAlias, defined, "auth.plugins", opts.Auth.Plugins, "authenticate",
		func(p *plugin) bool { return p.auth != nil })
	if err != nil {
		return nil, err
	}
	st.topics, err = pick(byAlias, defined, "topic-check.plugins", opts.Topics.Plugins, "filter topics",
		func(p *plugin) bool { return p.filter != nil })
	if err != nil {
		return nil, err
	}
	st.auth, st.shadowAuth = splitShadows(st.auth)
	st.topics, st.shadowTopics = splitShadows(st.topics)
	st.topicsNow = !slices.ContainsFunc(st.topics, func(p *plugin) bool { return p.inline == nil })
	st.topicsReuse = len(st.topics) > 0 && !slices.ContainsFunc(st.topics, func(p *plugin) bool { return p.reuse == nil })
	st.gen = stateGens.Add(1)
	switch opts.Topics.Default {
	case Ignore, Deny: // unset means deny (docs/design.md §3.2)
		st.fallback = Deny
	case Allow:
		st.fallback = Allow
	default:
		return nil, fmt.Errorf("topic-check.default: %d is not allow or deny", opts.Topics.Default)
	}
	if !st.topicsOn && len(st.topics) > 0 {
		m.log.Warn("topic-check.plugins are listed but topic-check.enable is false: no topic is checked",
			"plugins", opts.Topics.Plugins)
	}
	return st, nil
}

// load finds which capabilities one alias's plugin has.
func (m *Manager) load(alias string, spec PluginSpec) (*plugin, error) {
	key := "plugins." + alias
	switch {
	case alias == "":
		return nil, fmt.Errorf("plugins: an alias is empty; name every plugin")
	case spec.Plugin == nil:
		return nil, fmt.Errorf("%s: no plugin was built for this alias (type %q)", key, spec.Type)
	case spec.OnError > OnErrorStale:
		return nil, fmt.Errorf("%s.on-error: %d is not a policy (deny, allow, ignore, stale)", key, spec.OnError)
	case spec.Timeout < 0:
		return nil, fmt.Errorf("%s.timeout: %v is negative; use 0 for none or a duration such as 500ms", key, spec.Timeout)
	}
	p := &plugin{
		alias:    alias,
		kind:     spec.Type,
		value:    spec.Plugin,
		onError:  spec.OnError,
		timeout:  spec.Timeout,
		counters: m.metrics.forPlugin(alias),
		logger:   m.log,
	}
	if p.kind == "" {
		p.kind = fmt.Sprintf("%T", spec.Plugin)
	}
	if st, ok := spec.Plugin.(SelfTimed); ok && st.TimesOwnCalls() {
		p.timeout = 0
	}
	if len(spec.Config) > 0 {
		p.config = spec.Config
	}
	if spec.Shadow {
		p.shadow = newShadowState(m.metrics, alias, spec.ShadowMaxInflight)
	}
	p.auth, _ = spec.Plugin.(AuthPlugin)
	if p.filter, _ = spec.Plugin.(TopicFilter); p.filter != nil {
		p.inline, _ = p.filter.(TopicFilterNow)
		p.reuse, _ = p.filter.(TopicFilterReuse)
	}
	if p.sink, _ = spec.Plugin.(EventPlugin); p.sink != nil {
		p.wants = p.sink.Wants() // at load, before a manifest may narrow it
		p.borrow, _ = p.sink.(BorrowingEventPlugin)
	}
	return p, nil
}

// splitShadows separates a chain's enforcing plugins from its shadows.
func splitShadows(ps []*plugin) (enforcing, shadows []*plugin) {
	for _, p := range ps {
		if p.shadow != nil {
			shadows = append(shadows, p)
		} else {
			enforcing = append(enforcing, p)
		}
	}
	return enforcing, shadows
}

// pick resolves a list of aliases for one capability.
func pick(byAlias map[string]*plugin, defined, key string, aliases []string, verb string, able func(*plugin) bool) ([]*plugin, error) {
	out := make([]*plugin, 0, len(aliases))
	for i, alias := range aliases {
		p, ok := byAlias[alias]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: %q is not a plugin (defined: %s)", key, alias, defined)
		case !able(p):
			return nil, fmt.Errorf("%s: %q (type %s) cannot %s", key, alias, p.kind, verb)
		case slices.Contains(aliases[:i], alias):
			return nil, fmt.Errorf("%s: %q is listed twice; list each plugin once", key, alias)
		}
		out = append(out, p)
	}
	return out, nil
}
