package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/aclfile"
	"github.com/mqttd/mqttd/internal/hooks/eventlog"
	"github.com/mqttd/mqttd/internal/hooks/passwdfile"
	"github.com/mqttd/mqttd/internal/webhook"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// plugins is what the plugins, auth and topic-check sections build: the
// options of the hooks manager, and the instances behind each alias, kept
// so that a reload can reuse the ones whose configuration did not change.
type plugins struct {
	opts  hooks.Options
	conf  map[string]config.Plugin // the configuration each instance was built from
	built map[string]hooks.Plugin
	// pending applies the files that reused file plugins re-read: commit
	// runs them once the whole reload has succeeded.
	pending []func()
}

// preparer is a built-in whose file SIGHUP re-reads: Prepare reads and
// parses it, the commit it returns applies it.
type preparer interface {
	Prepare() (commit func(), err error)
}

// buildPlugins constructs every alias of cfg. An alias configured exactly as
// in prev reuses prev's instance (an HTTP plugin keeps its cache and
// breaker; a file plugin re-reads its file, applied only by commit); the
// others are new. On error the new instances are closed and prev's stay
// in place, unchanged: no file read here is applied.
func buildPlugins(cfg *config.Config, prev *plugins, log *slog.Logger, reg prometheus.Registerer) (*plugins, error) {
	ps := &plugins{
		conf:  map[string]config.Plugin{},
		built: map[string]hooks.Plugin{},
		opts: hooks.Options{
			Broker:  cfg.Name,
			Plugins: map[string]hooks.PluginSpec{},
			Auth: hooks.AuthOptions{Plugins: cfg.Auth.Plugins, Mode: cfg.Auth.Mode, AllowAnonymous: cfg.Auth.AllowAnonymous,
				RateLimit: hooks.RateLimitOptions(cfg.Auth.RateLimit)},
			Topics:     hooks.TopicOptions{Enable: cfg.TopicCheck.Enable, Plugins: cfg.TopicCheck.Plugins, Default: hooks.Deny},
			Logger:     log,
			Registerer: reg,
		},
	}
	if cfg.TopicCheck.Default == "allow" {
		ps.opts.Topics.Default = hooks.Allow
	}
	var errs []error
	var fresh []hooks.Plugin
	for _, alias := range sortedAliases(cfg.Plugins) {
		pc := cfg.Plugins[alias]
		var p hooks.Plugin
		if old, ok := prev.reusable(alias, pc); ok {
			p = old
			if r, ok := p.(preparer); ok {
				apply, err := r.Prepare()
				if err != nil {
					errs = append(errs, config.ExplainUnreadable(fmt.Errorf("plugins.%s: %w", alias, err)))
					continue
				}
				ps.pending = append(ps.pending, apply)
			}
		} else {
			var err error
			if p, err = newPlugin(alias, pc, cfg.Name, log, reg); err != nil {
				errs = append(errs, config.ExplainUnreadable(fmt.Errorf("plugins.%s: %w", alias, err)))
				continue
			}
			fresh = append(fresh, p)
		}
		onErr, _ := hooks.ParseOnError(pc.OnError) // validated by config
		ps.opts.Plugins[alias] = hooks.PluginSpec{Plugin: p, OnError: onErr, Timeout: pc.Timeout, Config: pc.Config, Type: pc.Type,
			Shadow: pc.Shadow, ShadowMaxInflight: pc.ShadowMaxInflight}
		ps.conf[alias] = pc
		ps.built[alias] = p
	}
	if len(errs) > 0 {
		closePlugins(fresh)
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// commit applies the files that buildPlugins re-read for reused file
// plugins. The caller runs it once nothing else in the reload can fail.
func (ps *plugins) commit() {
	for _, apply := range ps.pending {
		apply()
	}
	ps.pending = nil
}

// reusable returns prev's instance for alias when its configuration is the
// same.
func (ps *plugins) reusable(alias string, pc config.Plugin) (hooks.Plugin, bool) {
	if ps == nil {
		return nil, false
	}
	old, ok := ps.conf[alias]
	if !ok || !reflect.DeepEqual(old, pc) {
		return nil, false
	}
	return ps.built[alias], true
}

func newPlugin(alias string, pc config.Plugin, broker string, log *slog.Logger, reg prometheus.Registerer) (hooks.Plugin, error) {
	switch pc.Type {
	case config.PluginPasswordFile:
		return passwdfile.New(passwdfile.Options{File: pc.File})
	case config.PluginACLFile:
		return aclfile.New(aclfile.Options{File: pc.File})
	case config.PluginEventLog:
		return eventlog.New(eventlog.Options{Logger: log.With("plugin", alias), Level: pc.Level, Payload: pc.Payload,
			Events: pc.Events, QueueSize: pc.Queue.Size, QueueBytes: int(pc.Queue.SizeBytes)})
	case config.PluginHTTP:
		return webhook.New(webhookOptions(alias, pc, broker, log, reg))
	}
	return nil, fmt.Errorf("type %q has no implementation", pc.Type) // config.Load admits no other
}

func webhookOptions(alias string, pc config.Plugin, broker string, log *slog.Logger, reg prometheus.Registerer) webhook.Options {
	onErr, _ := hooks.ParseOnError(pc.OnError)
	q := pc.Queue
	return webhook.Options{
		Alias: alias, URL: pc.URL, Timeout: pc.Timeout, Secret: pc.Secret, Headers: pc.Headers,
		Events: pc.Events, Config: pc.Config, OnError: onErr,
		TLS:      webhook.TLSOptions{CAFile: pc.TLS.CA, CertFile: pc.TLS.Cert, KeyFile: pc.TLS.Key},
		MaxConns: pc.MaxConns, MaxBody: int64(pc.MaxBody), MaxRequest: int64(pc.MaxRequest), MaxConcurrent: pc.MaxConcurrent,
		Cache: webhook.CacheOptions{Size: pc.Cache.Size, TTL: pc.Cache.TTL, DenyTTL: pc.Cache.DenyTTL,
			MaxTTL: pc.Cache.MaxTTL, Jitter: pc.Cache.Jitter},
		Breaker: webhook.BreakerOptions{ConsecutiveFailures: pc.Breaker.ConsecutiveFailures, FailureRatio: pc.Breaker.FailureRatio,
			MinRequests: pc.Breaker.MinRequests, OpenFor: pc.Breaker.OpenFor, HalfOpenRequests: pc.Breaker.HalfOpenRequests,
			Interval: pc.Breaker.Interval},
		Queue: batch.Options{QueueSize: q.Size, QueueBytes: int(q.SizeBytes), Lanes: q.Lanes, MaxEvents: q.MaxEvents, MaxBytes: int(q.MaxBytes),
			Linger: q.Linger, Retries: q.Retries, Backoff: q.Backoff, MaxBackoff: q.MaxBackoff},
		Durable: durableOptions(alias, q),
		Broker:  broker, Logger: log, Registerer: reg,
	}
}

// webhooks lists the HTTP plugins, in alias order.
func (ps *plugins) webhooks() []*webhook.Plugin {
	var out []*webhook.Plugin
	for _, alias := range sortedAliases(ps.built) {
		if w, ok := ps.built[alias].(*webhook.Plugin); ok {
			out = append(out, w)
		}
	}
	return out
}

// notReady names the HTTP auth plugins that have not answered yet: until
// each has, a load balancer should not send clients (docs/design.md §4).
func (ps *plugins) notReady() []string {
	var waiting []string
	for _, alias := range ps.opts.Auth.Plugins {
		if w, ok := ps.built[alias].(*webhook.Plugin); ok && !w.Ready() {
			waiting = append(waiting, alias)
		}
	}
	return waiting
}

func (ps *plugins) String() string {
	var parts []string
	for _, alias := range sortedAliases(ps.conf) {
		parts = append(parts, alias+"="+ps.conf[alias].Type)
	}
	return strings.Join(parts, " ")
}

func closePlugins(list []hooks.Plugin) {
	for _, p := range list {
		if c, ok := p.(hooks.Closer); ok {
			c.Close(closedContext()) //nolint:errcheck // never started: nothing to drain
		}
	}
}

func sortedAliases[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// closedContext is a context that has already ended: closing a plugin
// that never started has nothing to wait for.
func closedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// durableOptions is a plugin's queue.durable: its spool directory, or none.
func durableOptions(alias string, q config.PluginQueue) webhook.DurableOptions {
	if !q.Durable {
		return webhook.DurableOptions{}
	}
	return webhook.DurableOptions{Dir: q.SpoolDir(alias), MaxBytes: int64(q.DurableMaxBytes)}
}
