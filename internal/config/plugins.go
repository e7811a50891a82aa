package config

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// Plugin is one alias under plugins: an HTTP service (url) or a built-in
// (type). Keys that do not apply to its type are rejected, so a typo such
// as file: on an HTTP plugin is not silently ignored.
type Plugin struct {
	Type     string            `mapstructure:"type" ref:"http when url is set" doc:"http, password-file, acl-file or event-log"`
	URL      string            `mapstructure:"url" doc:"http: base URL of the plugin service (http:// or https://)"`
	Timeout  time.Duration     `mapstructure:"timeout" doc:"a decision call taking longer is an error (on-error applies)"`
	OnError  string            `mapstructure:"on-error" doc:"when the plugin fails, times out or its breaker is open: deny, allow, ignore or stale"`
	Secret   string            `mapstructure:"secret" doc:"http: HMAC-SHA256 key for X-Mqttd-Signature; \"\" signs nothing"`
	Headers  map[string]string `mapstructure:"headers" doc:"http: extra request headers (values may use ${VAR})"`
	Events   []string          `mapstructure:"events" doc:"event types sent to the plugin; absent = what its manifest asks (http) or all (event-log)"`
	Config   map[string]any    `mapstructure:"config" doc:"free-form; handed to the plugin in broker_pre_start (keys are lower-cased)"`
	File     string            `mapstructure:"file" doc:"password-file, acl-file: the file, relative to the config file"`
	Level    string            `mapstructure:"level" doc:"event-log: level of the event lines (debug, info, warn, error)"`
	Payload  bool              `mapstructure:"payload" doc:"event-log: include message payloads"`
	MaxConns int               `mapstructure:"max-conns" doc:"http: pooled keep-alive connections to the plugin"`
	MaxBody  ByteSize          `mapstructure:"max-body" doc:"http: largest answer body read; a longer one is an error"`
	// MaxRequest and MaxConcurrent bound what a client can make the
	// plugin do: a request it stuffed, a flood of logins.
	MaxRequest    ByteSize      `mapstructure:"max-request" doc:"http: largest decision request body; a larger one is refused without a call (counted as too_large)"`
	MaxConcurrent int           `mapstructure:"max-concurrent" doc:"http: authenticate calls in flight at once; a call waits up to timeout for a slot, then is refused (counted as busy)"`
	TLS           PluginTLS     `mapstructure:"tls"`
	Cache         PluginCache   `mapstructure:"cache"`
	Breaker       PluginBreaker `mapstructure:"breaker"`
	Queue         PluginQueue   `mapstructure:"queue"`
}

// PluginTLS is the client side of TLS towards an https:// plugin.
type PluginTLS struct {
	CA   string `mapstructure:"ca" doc:"PEM CA bundle the plugin's certificate must chain to (default: the system roots)"`
	Cert string `mapstructure:"cert" doc:"PEM client certificate presented to the plugin"`
	Key  string `mapstructure:"key" doc:"PEM private key of cert"`
}

// PluginCache bounds and times the decision cache of an HTTP plugin.
type PluginCache struct {
	Size    int           `mapstructure:"size" doc:"decisions kept (LRU); 0 disables the cache"`
	TTL     time.Duration `mapstructure:"ttl" doc:"lifetime of an allow or ignore when the answer gives no cache_ttl or max-age"`
	DenyTTL time.Duration `mapstructure:"deny-ttl" doc:"lifetime of a deny when the answer gives none"`
	MaxTTL  time.Duration `mapstructure:"max-ttl" doc:"cap on any lifetime, the plugin's own included"`
	Jitter  float64       `mapstructure:"jitter" doc:"lifetimes vary by up to this fraction, so entries made together expire apart"`
}

// PluginBreaker is the circuit breaker in front of each decision endpoint.
type PluginBreaker struct {
	ConsecutiveFailures int           `mapstructure:"consecutive-failures" doc:"errors in a row that open the breaker"`
	FailureRatio        float64       `mapstructure:"failure-ratio" doc:"also open when this fraction of calls fail (0 = off)"`
	MinRequests         int           `mapstructure:"min-requests" doc:"calls in the window before failure-ratio applies"`
	Interval            time.Duration `mapstructure:"interval" doc:"window over which failures are counted while closed"`
	OpenFor             time.Duration `mapstructure:"open-for" doc:"how long an open breaker answers on-error at once"`
	HalfOpenRequests    int           `mapstructure:"half-open-requests" doc:"probe calls let through after open-for"`
}

// PluginQueue is the event delivery of an HTTP plugin (or event-log).
type PluginQueue struct {
	Size       int           `mapstructure:"size" doc:"events held; beyond it the oldest are dropped and counted"`
	SizeBytes  ByteSize      `mapstructure:"size-bytes" doc:"bytes of events held (encoded for http, payloads for event-log); beyond it the oldest are dropped and counted (large payloads reach it long before size)"`
	Lanes      int           `mapstructure:"lanes" doc:"http: batches in flight at once (one client's events always share a lane)"`
	MaxEvents  int           `mapstructure:"max-events" doc:"http: events per POST /events"`
	MaxBytes   ByteSize      `mapstructure:"max-bytes" doc:"http: body size per POST /events"`
	Linger     time.Duration `mapstructure:"linger" doc:"http: how long a batch waits to fill"`
	Retries    int           `mapstructure:"retries" doc:"http: retries of a batch after 5xx, 429 or a timeout"`
	Backoff    time.Duration `mapstructure:"backoff" doc:"http: first retry delay (doubles, with jitter)"`
	MaxBackoff time.Duration `mapstructure:"max-backoff" doc:"http: longest retry delay, Retry-After included"`
}

// Auth is the authenticate chain (docs/design.md §3.2).
type Auth struct {
	AllowAnonymous bool          `mapstructure:"allow-anonymous" doc:"accept a client when no plugin allowed or denied it"`
	Plugins        []string      `mapstructure:"plugins" doc:"aliases asked at every CONNECT"`
	Mode           string        `mapstructure:"mode" doc:"all (any deny rejects, else any allow accepts) or first (first non-ignore answer wins)"`
	RateLimit      AuthRateLimit `mapstructure:"rate-limit"`
}

// AuthRateLimit bounds the logins of each source address: a token bucket
// of failed logins, and the logins in progress at once.
type AuthRateLimit struct {
	FailuresPerSecond float64 `mapstructure:"failures-per-second" doc:"failed logins a source address earns back per second; 0 turns the limit off"`
	Burst             int     `mapstructure:"burst" doc:"failed logins a source address may have in a row before it is refused at once (0x97, 3.1.1 0x05)"`
	MaxPending        int     `mapstructure:"max-pending" doc:"logins one source address may have in progress at once; more are refused at once (0x97, 3.1.1 0x05); 0 = no bound"`
	MaxSources        int     `mapstructure:"max-sources" doc:"source addresses tracked (IPv6 by /64); beyond it the least recently failed are forgotten"`
}

// TopicCheck is the topic_filtering chain (docs/design.md §3.2).
type TopicCheck struct {
	Enable      bool     `mapstructure:"enable" doc:"check subscribe, publish and receive with the plugins below"`
	Plugins     []string `mapstructure:"plugins" doc:"aliases asked for each check"`
	Default     string   `mapstructure:"default" doc:"allow or deny, when every plugin ignores"`
	DenyPublish string   `mapstructure:"deny-publish" doc:"a denied MQTT 3.1.1 publish is acknowledged and dropped (drop) or closes the connection (disconnect)"`
}

// Plugin types are the values of a plugin's type key: an HTTP service or
// one of the built-ins compiled into mqttd. Each type accepts only its own
// keys (see Plugin).
const (
	PluginHTTP         = "http"
	PluginPasswordFile = "password-file"
	PluginACLFile      = "acl-file"
	PluginEventLog     = "event-log"
)

var pluginTypes = []string{PluginHTTP, PluginPasswordFile, PluginACLFile, PluginEventLog}

// defaultPlugin is what every key of a plugin entry defaults to.
func defaultPlugin() Plugin {
	return Plugin{
		Timeout:       time.Second,
		OnError:       "deny",
		Level:         "info",
		MaxConns:      64,
		MaxBody:       64 * KiB,
		MaxRequest:    64 * KiB,
		MaxConcurrent: 64,
		Cache:         PluginCache{Size: 10000, TTL: time.Minute, DenyTTL: 10 * time.Second, MaxTTL: time.Hour, Jitter: 0.1},
		Breaker: PluginBreaker{ConsecutiveFailures: 5, MinRequests: 20, Interval: time.Minute,
			OpenFor: 10 * time.Second, HalfOpenRequests: 1},
		Queue: PluginQueue{Size: 10000, SizeBytes: 64 * MiB, Lanes: 4, MaxEvents: 1000, MaxBytes: 1 * MiB, Linger: 50 * time.Millisecond,
			Retries: 5, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second},
	}
}

// entryDefault is the value each key of a named entry of type t starts
// from: a plugin alias gets the plugin defaults, a listener nothing.
func entryDefault(t reflect.Type) reflect.Value {
	if t == reflect.TypeFor[Plugin]() {
		return reflect.ValueOf(defaultPlugin())
	}
	return reflect.New(t).Elem()
}

// pluginKeys lists, per type, the keys that apply to it beyond the common
// ones (type, timeout, on-error, events, config).
var pluginKeys = map[string][]string{
	PluginHTTP:         {"url", "secret", "headers", "max-conns", "max-body", "max-request", "max-concurrent", "tls", "cache", "breaker", "queue"},
	PluginPasswordFile: {"file"},
	PluginACLFile:      {"file"},
	PluginEventLog:     {"level", "payload", "queue"},
}

var commonPluginKeys = []string{"type", "timeout", "on-error", "events", "config"}

// uses reports whether key applies to the plugin's type, so a printed
// configuration shows an acl-file plugin without HTTP tuning.
func (p Plugin) uses(key string) bool {
	return slices.Contains(commonPluginKeys, key) || slices.Contains(pluginKeys[p.Type], key)
}

// checkPluginKeys rejects keys the file sets on a plugin whose type does
// not use them. raw is the file's tree.
func (l *loader) checkPluginKeys(raw map[string]any, c *Config) []error {
	plugins, _ := raw["plugins"].(map[string]any)
	var errs []error
	for _, alias := range sortedKeys(plugins) {
		entry, _ := plugins[alias].(map[string]any)
		p, ok := c.Plugins[alias]
		typ := strings.ToLower(strings.TrimSpace(p.Type))
		if typ == "" && p.URL != "" {
			typ = PluginHTTP
		}
		if !ok || !slices.Contains(pluginTypes, typ) {
			continue
		}
		allowed := append(slices.Clone(commonPluginKeys), pluginKeys[typ]...)
		for _, k := range sortedKeys(entry) {
			if !slices.Contains(allowed, k) {
				errs = append(errs, l.errorf("plugins."+alias+"."+k, "does not apply to %s plugins (their keys: %s)", typ, strings.Join(allowed, ", ")))
			}
		}
	}
	return errs
}

// validatePlugins checks the plugins, auth and topic-check sections: each
// plugin on its own, then the lists and policies that refer to them.
func (l *loader) validatePlugins(c *Config) []error {
	var errs []error
	// Empty and absent mean the same; keep one form so configurations
	// compare equal whichever way they were written.
	if len(c.Plugins) == 0 {
		c.Plugins = nil
	}
	if len(c.Auth.Plugins) == 0 {
		c.Auth.Plugins = nil
	}
	if len(c.TopicCheck.Plugins) == 0 {
		c.TopicCheck.Plugins = nil
	}
	for _, alias := range sortedKeys(c.Plugins) {
		errs = append(errs, l.validatePlugin(c, alias)...)
	}
	return append(errs, l.validateChains(c)...)
}

// validatePlugin checks and normalises one entry of plugins: its type
// (http when only a url is given), the keys its type needs, and the keys
// every plugin has. A plugin whose type is unknown is checked no further.
func (l *loader) validatePlugin(c *Config, alias string) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	p := c.Plugins[alias]
	key := "plugins." + alias
	p.Type = strings.ToLower(strings.TrimSpace(p.Type))
	if p.Type == "" {
		if p.URL == "" {
			return append(errs, l.errorf(key, "has neither url nor type (set url: http://host:port for an HTTP plugin, or type: %s)", strings.Join(pluginTypes[1:], ", ")))
		}
		p.Type = PluginHTTP
	}
	if !slices.Contains(pluginTypes, p.Type) {
		return append(errs, l.errorf(key+".type", "%q is not a plugin type (use %s)", p.Type, strings.Join(pluginTypes, ", ")))
	}
	switch p.Type {
	case PluginHTTP:
		if u, err := url.Parse(p.URL); p.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(l.errorf(key+".url", "%q is not an http:// or https:// URL (e.g. http://hooks:3000)", p.URL))
		}
		if (p.TLS.Cert == "") != (p.TLS.Key == "") {
			add(l.errorf(key+".tls", "cert and key go together (set both, or neither)"))
		}
		p.TLS.CA, p.TLS.Cert, p.TLS.Key = c.resolve(p.TLS.CA), c.resolve(p.TLS.Cert), c.resolve(p.TLS.Key)
	case PluginPasswordFile, PluginACLFile:
		if p.File == "" {
			add(l.errorf(key+".file", "is missing (%s plugins read their entries from a file)", p.Type))
		}
		p.File = c.resolve(p.File)
	case PluginEventLog:
		p.Level = strings.ToLower(strings.TrimSpace(p.Level))
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, p.Level) {
			add(l.errorf(key+".level", "%q is not a log level (use debug, info, warn or error)", p.Level))
		}
	}
	if p.Timeout <= 0 {
		add(l.errorf(key+".timeout", "%s must be positive (e.g. 500ms)", p.Timeout))
	}
	p.OnError = strings.ToLower(strings.TrimSpace(p.OnError))
	if !slices.Contains([]string{"deny", "allow", "ignore", "stale"}, p.OnError) {
		add(l.errorf(key+".on-error", "%q is not a policy (use deny, allow, ignore or stale)", p.OnError))
	}
	for _, ev := range p.Events {
		if _, ok := mqtt.ParseEventType(ev); !ok {
			add(l.errorf(key+".events", "%q is not an event (use %s)", ev, mqtt.EventNames()))
		}
	}
	if len(p.Events) == 0 {
		p.Events = nil
	}
	errs = append(errs, l.validateHTTPTuning(key, &p)...)
	c.Plugins[alias] = p
	return errs
}

// validateChains checks the auth and topic-check sections: their plugin
// lists name defined aliases once each, and their modes and policies.
func (l *loader) validateChains(c *Config) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	aliases := strings.Join(sortedKeys(c.Plugins), ", ")
	if aliases == "" {
		aliases = "none"
	}
	checkList := func(key string, list []string) {
		seen := map[string]bool{}
		for _, a := range list {
			switch _, ok := c.Plugins[a]; {
			case !ok:
				add(l.errorf(key, "%q is not a plugin alias (defined: %s)", a, aliases))
			case seen[a]:
				add(l.errorf(key, "%q is listed twice", a))
			}
			seen[a] = true
		}
	}
	checkList("auth.plugins", c.Auth.Plugins)
	chk := bounds{l, &errs}
	if rl := c.Auth.RateLimit; rl.FailuresPerSecond < 0 {
		chk.add("auth.rate-limit.failures-per-second", "%v is negative (use 0 to turn the limit off)", rl.FailuresPerSecond)
	}
	chk.atLeast("auth.rate-limit.burst", c.Auth.RateLimit.Burst, 1)
	chk.atLeast("auth.rate-limit.max-pending", c.Auth.RateLimit.MaxPending, 0)
	chk.atLeast("auth.rate-limit.max-sources", c.Auth.RateLimit.MaxSources, 1)
	checkList("topic-check.plugins", c.TopicCheck.Plugins)
	c.Auth.Mode = strings.ToLower(strings.TrimSpace(c.Auth.Mode))
	if c.Auth.Mode != "all" && c.Auth.Mode != "first" {
		add(l.errorf("auth.mode", "%q is not a mode (use all or first)", c.Auth.Mode))
	}
	c.TopicCheck.Default = strings.ToLower(strings.TrimSpace(c.TopicCheck.Default))
	if c.TopicCheck.Default != "allow" && c.TopicCheck.Default != "deny" {
		add(l.errorf("topic-check.default", "%q is not a decision (use allow or deny)", c.TopicCheck.Default))
	}
	c.TopicCheck.DenyPublish = strings.ToLower(strings.TrimSpace(c.TopicCheck.DenyPublish))
	if c.TopicCheck.DenyPublish != "drop" && c.TopicCheck.DenyPublish != "disconnect" {
		add(l.errorf("topic-check.deny-publish", "%q is not a policy (use drop or disconnect)", c.TopicCheck.DenyPublish))
	}
	return errs
}

// validateHTTPTuning checks the numeric keys of the cache, breaker and
// queue sections.
func (l *loader) validateHTTPTuning(key string, p *Plugin) []error {
	var errs []error
	chk := bounds{l, &errs}
	k := func(sub string) string { return key + "." + sub }
	chk.atLeast(k("max-conns"), p.MaxConns, 1)
	if p.MaxBody < 1 {
		chk.add(k("max-body"), "%s is out of range (use at least 1, e.g. 64KiB)", p.MaxBody)
	}
	if p.MaxRequest < 1 {
		chk.add(k("max-request"), "%s is out of range (use at least 1, e.g. 64KiB)", p.MaxRequest)
	}
	chk.atLeast(k("max-concurrent"), p.MaxConcurrent, 1)
	chk.atLeast(k("cache.size"), p.Cache.Size, 0)
	chk.fraction(k("cache.jitter"), p.Cache.Jitter)
	chk.notNegative(k("cache.ttl"), p.Cache.TTL)
	chk.notNegative(k("cache.deny-ttl"), p.Cache.DenyTTL)
	chk.notNegative(k("cache.max-ttl"), p.Cache.MaxTTL)
	chk.atLeast(k("breaker.consecutive-failures"), p.Breaker.ConsecutiveFailures, 1)
	chk.fraction(k("breaker.failure-ratio"), p.Breaker.FailureRatio)
	chk.atLeast(k("breaker.min-requests"), p.Breaker.MinRequests, 1)
	chk.atLeast(k("breaker.half-open-requests"), p.Breaker.HalfOpenRequests, 1)
	chk.positive(k("breaker.open-for"), p.Breaker.OpenFor)
	chk.positive(k("breaker.interval"), p.Breaker.Interval)
	chk.atLeast(k("queue.size"), p.Queue.Size, 1)
	chk.size(k("queue.size-bytes"), p.Queue.SizeBytes, "64MiB")
	chk.atLeast(k("queue.lanes"), p.Queue.Lanes, 1)
	chk.atLeast(k("queue.max-events"), p.Queue.MaxEvents, 1)
	chk.atLeast(k("queue.retries"), p.Queue.Retries, 0)
	chk.size(k("queue.max-bytes"), p.Queue.MaxBytes, "1MiB")
	chk.positive(k("queue.backoff"), p.Queue.Backoff)
	chk.positive(k("queue.max-backoff"), p.Queue.MaxBackoff)
	chk.notNegative(k("queue.linger"), p.Queue.Linger)
	return errs
}

// reloadable are the top-level keys SIGHUP applies to a running broker.
var reloadable = []string{"plugins", "auth", "topic-check"}

// RestartNeeded lists the top-level keys whose values differ between c
// and next and that a reload does not apply.
func (c *Config) RestartNeeded(next *Config) []string {
	var keys []string
	a, b := reflect.ValueOf(*c), reflect.ValueOf(*next)
	for _, f := range fieldsOf(a.Type()) {
		if !slices.Contains(reloadable, f.key) && !reflect.DeepEqual(a.Field(f.index).Interface(), b.Field(f.index).Interface()) {
			keys = append(keys, f.key)
		}
	}
	return keys
}
