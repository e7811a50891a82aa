package webhook

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// Options configure one HTTP plugin; they mirror the keys of a plugins
// entry in the broker's config. Zero values take the defaults in
// brackets, except in Cache, where zero means zero (config supplies
// DefaultCache) because "0 disables" is a setting an operator makes.
type Options struct {
	Alias    string            // the plugin's alias in config: names it in logs, metrics and errors
	URL      string            // base URL; endpoint paths are appended to it
	Timeout  time.Duration     // per decision call [1s]
	Secret   string            // HMAC key for X-Mqttd-Signature; "" signs nothing
	Headers  map[string]string // extra request headers, ${VAR} already expanded
	Events   []string          // event names; nil = what the manifest asks (all until it answers)
	Config   map[string]any    // handed to the plugin in broker_pre_start
	OnError  hooks.OnError     // the chain applies it; the plugin serves stale decisions for OnErrorStale
	TLS      TLSOptions        // client TLS for an https URL
	MaxConns int               // pooled keep-alive connections to the plugin [64]
	MaxBody  int64             // largest answer body read; longer is an error [64 KiB]
	// MaxRequest bounds a decision request's encoded body; a larger one
	// is refused without a call [64 KiB]. A CONNECT's user properties are
	// the client's to fill, and the plugin's limit is not its to probe.
	MaxRequest int64
	// MaxConcurrent bounds the authenticate calls in flight at once; a
	// call waits for a slot within its timeout, then is refused [64].
	MaxConcurrent int
	Login         LoginOptions          // bounds on the acl and attributes of an authenticate answer [DefaultLogin]
	Cache         CacheOptions          // the decision cache and the topic memo in front of it
	Breaker       BreakerOptions        // when failing calls stop being made, per endpoint
	Queue         batch.Options         // event delivery; Logger defaults to this plugin's
	Durable       DurableOptions        // spool events on disk (Queue.Spool is set from it)
	Broker        string                // the node's name, in every event [mqttd]
	Logger        *slog.Logger          // [slog.Default()]
	Registerer    prometheus.Registerer // where metrics go; nil = nowhere
}

// TLSOptions are the client side of TLS towards an https:// plugin.
type TLSOptions struct {
	CAFile   string // PEM bundle the plugin's certificate must chain to; "" = system roots
	CertFile string // PEM client certificate, for plugins that require mutual TLS
	KeyFile  string // its private key
}

// CacheOptions size and time the decision cache.
type CacheOptions struct {
	Size    int           // entries; 0 disables the cache
	TTL     time.Duration // allow and ignore when the answer gives no lifetime; 0 = not stored
	DenyTTL time.Duration // deny when the answer gives no lifetime; 0 = not stored
	MaxTTL  time.Duration // bound on any lifetime; 0 = none
	Jitter  float64       // ±fraction of every lifetime
}

// DefaultCache is the cache of a plugin whose config says nothing.
var DefaultCache = CacheOptions{Size: 10000, TTL: time.Minute, DenyTTL: 10 * time.Second, MaxTTL: time.Hour, Jitter: 0.1}

// BreakerOptions set the circuit breaker in front of each decision
// endpoint.
type BreakerOptions struct {
	ConsecutiveFailures int           // errors in a row that open it [5]
	FailureRatio        float64       // also open at this error fraction; 0 = off
	MinRequests         int           // calls in the window before FailureRatio applies [20]
	OpenFor             time.Duration // how long it stays open [10s]
	HalfOpenRequests    int           // probes let through after OpenFor [1]
	Interval            time.Duration // counting window while closed [60s]
}

func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("webhook %s: url %q is not an http:// or https:// URL (e.g. http://hooks:3000)", o.Alias, o.URL)
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Alias == "" {
		return o, fmt.Errorf("webhook %s: the plugin needs an alias (its name under plugins:)", o.URL)
	}
	if o.Cache.Size < 0 {
		return o, fmt.Errorf("webhook %s: cache size %d is negative (use 0 to disable the cache)", o.Alias, o.Cache.Size)
	}
	for _, name := range o.Events {
		if _, ok := mqtt.ParseEventType(name); !ok {
			return o, fmt.Errorf("webhook %s: %q is not an event name (see docs/design.md §3.3, e.g. broker_client_connected)", o.Alias, name)
		}
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		return o, fmt.Errorf("webhook %s: tls cert and key go together (set both, or neither)", o.Alias)
	}
	setDefault(&o.Timeout, time.Second)
	setDefault(&o.MaxConns, 64)
	setDefault(&o.MaxBody, 64<<10)
	setDefault(&o.MaxRequest, 64<<10)
	setDefault(&o.MaxConcurrent, 64)
	l := &o.Login
	setDefault(&l.MaxACLRules, DefaultLogin.MaxACLRules)
	setDefault(&l.MaxACLTopicBytes, DefaultLogin.MaxACLTopicBytes)
	setDefault(&l.MaxAttributes, DefaultLogin.MaxAttributes)
	setDefault(&l.MaxAttributeBytes, DefaultLogin.MaxAttributeBytes)
	b := &o.Breaker
	setDefault(&b.ConsecutiveFailures, 5)
	setDefault(&b.MinRequests, 20)
	setDefault(&b.OpenFor, 10*time.Second)
	setDefault(&b.HalfOpenRequests, 1)
	setDefault(&b.Interval, time.Minute)
	setDefault(&o.Broker, "mqttd")
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("plugin", o.Alias)
	if o.Queue.Logger == nil {
		o.Queue.Logger = o.Logger
	}
	return o, nil
}

func setDefault[T int | int64 | time.Duration | string](v *T, d T) {
	var zero T
	if *v <= zero {
		*v = d
	}
}
