// Validating the plugins, auth and topic-check sections: keys per plugin type, each entry, the chains.

package config

import (
	"net/url"
	"slices"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt"
)

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
		allowed := append(append(slices.Clone(commonPluginKeys), pluginKeys[typ]...), shadowPluginKeys...)
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
	if p.ShadowMaxInflight < 1 {
		add(l.errorf(key+".shadow-max-inflight", "%d is out of range (use at least 1, e.g. 64)", p.ShadowMaxInflight))
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
	errs = append(errs, l.validateDurable(key, &p)...)
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
