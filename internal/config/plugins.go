package config

import (
	"reflect"
	"slices"
	"time"
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
	// Shadow trials a plugin on real traffic without letting it decide.
	Shadow            bool        `mapstructure:"shadow" doc:"asked beside the enforcing plugins of the chains that list it, never enforced and never awaited; agreement counted in mqttd_plugin_shadow_total, disagreements sampled in the log"`
	ShadowMaxInflight int         `mapstructure:"shadow-max-inflight" doc:"shadow: questions in flight at once; checks beyond it are not put to the plugin (counted as skipped)"`
	Login             PluginLogin `mapstructure:"login"`
}

// PluginLogin bounds the grants (acl) and attributes an authenticate
// answer may hand the broker to keep with a client. An answer over a bound
// is an error (on-error answers it), never truncated: a cut rule list could
// lose a deny.
type PluginLogin struct {
	MaxACLRules       int `mapstructure:"max-acl-rules" doc:"http: rules in an authenticate answer's acl; more make the answer an error (counted in mqttd_webhook_login_refused_total)"`
	MaxACLTopicBytes  int `mapstructure:"max-acl-topic-bytes" doc:"http: bytes of one acl rule's topic; a longer one makes the answer an error (counted)"`
	MaxAttributes     int `mapstructure:"max-attributes" doc:"http: entries in an authenticate answer's attributes; more make the answer an error (counted)"`
	MaxAttributeBytes int `mapstructure:"max-attribute-bytes" doc:"http: bytes of one attribute's key, and of its value; a longer one makes the answer an error (counted)"`
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
	Size       int           `mapstructure:"size" doc:"events held, all lanes together (a lane with a slow batch may use what the others leave); beyond it the oldest are dropped and counted"`
	SizeBytes  ByteSize      `mapstructure:"size-bytes" doc:"bytes of events held (encoded for http, payloads for event-log); beyond it the oldest are dropped and counted (large payloads reach it long before size)"`
	Lanes      int           `mapstructure:"lanes" doc:"http: batches in flight at once (one client's events always share a lane)"`
	MaxEvents  int           `mapstructure:"max-events" doc:"http: events per POST /events"`
	MaxBytes   ByteSize      `mapstructure:"max-bytes" doc:"http: body size per POST /events"`
	Linger     time.Duration `mapstructure:"linger" doc:"http: how long a batch waits to fill"`
	Retries    int           `mapstructure:"retries" doc:"http: retries of a batch after 5xx, 429 or a timeout"`
	Backoff    time.Duration `mapstructure:"backoff" doc:"http: first retry delay (doubles, with jitter)"`
	MaxBackoff time.Duration `mapstructure:"max-backoff" doc:"http: longest retry delay, Retry-After included"`
	// Durable delivery of an HTTP plugin's events (see docs/plugins.md).
	Durable         bool     `mapstructure:"durable" doc:"http: when the queue is full or the plugin is down, spool events on disk and deliver them at least once, in each client's order, across restarts (the plugin de-duplicates by event id)"`
	DurableMaxBytes ByteSize `mapstructure:"durable-max-bytes" doc:"http: bytes the spool holds; beyond it the oldest spooled events are dropped, counted and logged"`
	DurableDir      string   `mapstructure:"durable-dir" doc:"http: the spool's directory, one per plugin; empty: data/events/<alias> (relative to the working directory)"`
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
	MaxSources        int     `mapstructure:"max-sources" doc:"source addresses tracked (IPv6 by /64); beyond it an idle source is forgotten, least recently failed first, and a new address is refused while every tracked one has logins in progress"`
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
		Timeout:           time.Second,
		OnError:           "deny",
		Level:             "info",
		MaxConns:          64,
		MaxBody:           64 * KiB,
		MaxRequest:        64 * KiB,
		MaxConcurrent:     64,
		ShadowMaxInflight: 64,
		Cache:             PluginCache{Size: 10000, TTL: time.Minute, DenyTTL: 10 * time.Second, MaxTTL: time.Hour, Jitter: 0.1},
		Breaker: PluginBreaker{ConsecutiveFailures: 5, MinRequests: 20, Interval: time.Minute,
			OpenFor: 10 * time.Second, HalfOpenRequests: 1},
		Queue: PluginQueue{Size: 10000, SizeBytes: 64 * MiB, Lanes: 4, MaxEvents: 1000, MaxBytes: 1 * MiB, Linger: 50 * time.Millisecond,
			Retries: 5, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, DurableMaxBytes: 256 * MiB},
		Login: PluginLogin{MaxACLRules: 64, MaxACLTopicBytes: 1024, MaxAttributes: 32, MaxAttributeBytes: 256},
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
	PluginHTTP:         {"url", "secret", "headers", "max-conns", "max-body", "max-request", "max-concurrent", "tls", "cache", "breaker", "queue", "login"},
	PluginPasswordFile: {"file"},
	PluginACLFile:      {"file"},
	PluginEventLog:     {"level", "payload", "queue"},
}

var commonPluginKeys = []string{"type", "timeout", "on-error", "events", "config"}

// shadowPluginKeys apply to every type that decides (see Plugin.Shadow).
var shadowPluginKeys = []string{"shadow", "shadow-max-inflight"}

// uses reports whether key applies to the plugin's type, so a printed
// configuration shows an acl-file plugin without HTTP tuning.
func (p Plugin) uses(key string) bool {
	return slices.Contains(commonPluginKeys, key) || slices.Contains(pluginKeys[p.Type], key) ||
		key == "shadow" || (key == "shadow-max-inflight" && p.Shadow)
}

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
