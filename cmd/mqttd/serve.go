package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/admin"
	"github.com/mqttd/mqttd/internal/cluster"
	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// adminShutdownTimeout bounds how long a scrape in progress may hold up the
// exit once the broker has stopped.
const adminShutdownTimeout = 2 * time.Second

// serve runs the broker until ctx ends, then shuts it down within the
// configured grace period.
func serve(ctx context.Context, cfgPath string, stderr io.Writer) int {
	cfg, opts, ok := loadConfig(cfgPath, stderr)
	if !ok {
		return exitUsage
	}
	log, lf, ok := openLogging(cfg, stderr)
	if !ok {
		return exitUsage
	}
	if lf != nil {
		defer lf.Close()
	}
	reg := admin.NewRegistry()
	ps, err := buildPlugins(cfg, nil, log, reg)
	if err != nil {
		log.Error("cannot load the plugins; fix the configuration", "err", err)
		return exitUsage
	}
	mgr, err := hooks.New(ps.opts)
	if err != nil {
		closePlugins(slices.Collect(maps.Values(ps.built)))
		log.Error("cannot load the plugins; fix the configuration", "err", err)
		return exitUsage
	}
	var current atomic.Pointer[plugins]
	current.Store(ps)
	drain := sync.OnceFunc(func() { closeHooks(mgr, cfg.ShutdownGrace, log) })
	defer drain()

	opts.Logger = log
	opts.Hooks = mgr.Hooks()
	node, err := openCluster(ctx, cfg, log)
	if err != nil {
		log.Error("cannot join the cluster", "err", err)
		return exitFailure
	}
	defer closeCluster(node, log)
	if err := registerCluster(node, reg); err != nil {
		log.Error("cannot export the cluster metrics", "err", err)
		return exitFailure
	}
	if node != nil {
		opts.Cluster = node
		opts.SharedStore = sharedStore(cfg)
	}
	recoveryStart := time.Now()
	st, storeMetrics, err := startStore(cfg, node, log, reg)
	if err != nil {
		log.Error("cannot open the store", "err", err)
		return exitFailure
	}
	closeSt := sync.OnceValue(func() int { return closeStore(st, log) })
	defer closeSt()
	opts.Store = st // nil for storage.type memory: nothing persisted
	b, err := mqtt.New(opts)
	if err != nil {
		log.Error("invalid broker options; fix the configuration", "err", err)
		return exitUsage
	}
	if err := startCluster(ctx, node, b); err != nil {
		log.Error("cannot start the cluster node", "err", err)
		return exitFailure
	}
	if err := mgr.Start(ctx); err != nil {
		log.Error("cannot start the plugins", "err", err)
		return exitFailure
	}
	// The admin listener comes first, so that /healthz answers and /readyz
	// says why it is not ready while Start restores the store.
	var stopping, starting atomic.Bool
	starting.Store(true)
	if err := followPurges(node, current.Load); err != nil {
		log.Error("cannot follow the cluster's cache purges", "err", err)
		return exitFailure
	}
	adm, err := startAdmin(cfg, b, &current, node, reg, clusterReady(readiness(&stopping, &starting, b, &current), node), log)
	if err != nil {
		log.Error("cannot start the admin listener", "err", err)
		return exitFailure
	}
	if err := b.Start(); err != nil {
		log.Error("cannot start the broker; if a port is in use, stop what holds it or change the listener's bind", "err", err)
		stopAdmin(adm, log)
		return exitFailure
	}
	starting.Store(false)
	if storeMetrics != nil {
		storeMetrics.SetRecovery(time.Since(recoveryStart))
		log.Info("recovered from the store", "took", time.Since(recoveryStart).Round(time.Millisecond).String())
	}
	if err := resyncCluster(ctx, node, opts.Store != nil); err != nil {
		log.Error("cannot load the cluster's retained messages", "err", err)
		stopAdmin(adm, log)
		closeBroker(b, cfg.ShutdownGrace, log)
		return exitFailure
	}
	if len(ps.conf) > 0 {
		log.Info("plugins loaded", "plugins", ps.String())
	}
	logListeners(b, opts.Listeners, log)
	runUntilDone(ctx, cfgPath, cfg, lf, &current, mgr, log, reg)

	log.Info("shutting down", "reason", context.Cause(ctx).Error(), "grace", cfg.ShutdownGrace.String())
	stopping.Store(true)
	code := closeBroker(b, cfg.ShutdownGrace, log)
	if c := closeSt(); code == exitOK { // after the broker: it writes until it stops
		code = c
	}
	stopAdmin(adm, log)
	drain()
	log.Info("stopped")
	return code
}

// openLogging opens the log file when one is configured (nil otherwise),
// builds the logger, and logs the configuration's warnings and the start.
func openLogging(cfg *config.Config, stderr io.Writer) (*slog.Logger, *logFile, bool) {
	var logOut io.Writer = stderr
	var lf *logFile
	if path := cfg.LogFile(); path != "" {
		var err error
		if lf, err = openLogFile(path); err != nil {
			fmt.Fprintf(stderr, "config: %v\n", err)
			return nil, nil, false
		}
		logOut = lf
	}
	log := cfg.Logging.NewLogger(logOut)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	source := cfg.File()
	if source == "" {
		source = "built-in defaults"
	}
	log.Info("starting", "version", versionString(), "name", cfg.Name, "config", source)
	return log, lf, true
}

// readiness is /readyz's check: not while starting (the store is being
// restored) or shutting down, and only once the listeners are up and every
// auth plugin answers.
func readiness(stopping, starting *atomic.Bool, b *mqtt.Broker, current *atomic.Pointer[plugins]) func() error {
	return func() error {
		switch {
		case stopping.Load():
			return errors.New("shutting down")
		case starting.Load():
			return errors.New("starting: restoring sessions and retained messages from the store")
		case !b.Ready():
			return errors.New("broker listeners are not up")
		}
		if waiting := current.Load().notReady(); len(waiting) > 0 {
			return fmt.Errorf("auth plugins not answering yet: %s", strings.Join(waiting, ", "))
		}
		return nil
	}
}

// startAdmin starts the admin listener when admin.bind is set (nil, nil
// when it is not).
func startAdmin(cfg *config.Config, b *mqtt.Broker, current *atomic.Pointer[plugins], node *cluster.Node, reg *prometheus.Registry, ready func() error, log *slog.Logger) (*admin.Server, error) {
	if cfg.Admin.Bind == "" {
		return nil, nil
	}
	pluginRoutes := admin.Mount{Pattern: "/plugins", Handler: webhook.AdminRoutes(func() []*webhook.Plugin { return current.Load().webhooks() },
		func() []webhook.Listed { return current.Load().listed() })}
	mounts := []admin.Mount{pluginRoutes, adminAPI(b, cfg, current.Load, node).Mount()}
	if cfg.Admin.Pprof {
		mounts = append(mounts, admin.Profiler())
	}
	guard := admin.NewGuard(cfg.Admin.Token, reg)
	adm, err := admin.Listen(cfg.Admin.Bind, guard.Wrap(admin.NewHandler(b, ready, reg, mounts...)), log)
	if err != nil {
		return nil, err
	}
	log.Info("admin listening", "addr", adm.Addr().String(), "paths", "/healthz /readyz /metrics /api/v1 /plugins", "token", cfg.Admin.Token != "")
	if cfg.Admin.Token == "" && !admin.Loopback(adm.Addr()) {
		log.Warn("admin.token is not set: the admin API answers only over loopback; set admin.token to use it on " + adm.Addr().String())
	}
	return adm, nil
}

// logListeners logs each broker listener with the address it is bound to.
func logListeners(b *mqtt.Broker, listeners []mqtt.ListenerConfig, log *slog.Logger) {
	for _, lc := range listeners {
		addr := "?"
		if a := b.Addr(lc.Name); a != nil {
			addr = a.String()
		}
		attrs := []any{"listener", lc.Name, "type", lc.Type, "tls", lc.TLS != nil, "addr", addr}
		if lc.Type == "ws" {
			attrs = append(attrs, "path", lc.Path)
		}
		log.Info("listener ready", attrs...)
	}
}

// runUntilDone serves SIGHUP (reopen the log file, reload the plugins)
// until ctx ends.
func runUntilDone(ctx context.Context, cfgPath string, cfg *config.Config, lf *logFile, current *atomic.Pointer[plugins], mgr *hooks.Manager, log *slog.Logger, reg prometheus.Registerer) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if lf != nil {
				if err := lf.Reopen(); err != nil {
					log.Error("cannot reopen the log file; logging on into the one open before", "err", err)
				}
			}
			if next, err := reload(cfgPath, cfg, current.Load(), mgr, log, reg); err != nil {
				log.Error("reload failed; the running configuration stays", "err", err)
			} else {
				current.Store(next)
				log.Info("reloaded plugins, auth and topic-check", "plugins", next.String())
			}
		case <-ctx.Done():
			return
		}
	}
}

// stopAdmin stops the admin listener, if any, letting a scrape in progress
// finish for a short while.
func stopAdmin(adm *admin.Server, log *slog.Logger) {
	if adm == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	if err := adm.Shutdown(actx); err != nil {
		log.Warn("admin listener did not stop cleanly", "err", err)
	}
}

// reload re-reads the config file on SIGHUP and applies its plugins, auth
// and topic-check sections without touching connected clients. The other
// sections need a restart: a change there is logged, not applied. It
// changes nothing unless it succeeds: the files of reused plugins are read
// with the rest but applied only after the manager took the new plugins.
func reload(path string, running *config.Config, cur *plugins, mgr *hooks.Manager, log *slog.Logger, reg prometheus.Registerer) (*plugins, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if changed := running.RestartNeeded(cfg); len(changed) > 0 {
		log.Warn("these sections changed but need a restart to apply", "sections", strings.Join(changed, ", "))
	}
	next, err := buildPlugins(cfg, cur, log, reg)
	if err != nil {
		return nil, err
	}
	if err := mgr.Reload(next.opts); err != nil {
		var fresh []hooks.Plugin
		for alias, p := range next.built {
			if cur.built[alias] != p {
				fresh = append(fresh, p)
			}
		}
		closePlugins(fresh)
		return nil, err
	}
	next.commit()
	return next, nil
}

// closeHooks drains the plugins' event queues (broker_post_shutdown
// included) within grace.
func closeHooks(mgr *hooks.Manager, grace time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := mgr.Close(ctx); err != nil {
		log.Warn("plugins did not drain their events in time", "err", err)
	}
}

// closeBroker closes b within grace. Running out of grace is not a
// failure: the broker cuts what is left, as asked.
func closeBroker(b *mqtt.Broker, grace time.Duration, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := b.Close(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn("shutdown grace period over; remaining connections were cut", "grace", grace.String())
	case err != nil:
		log.Error("broker did not close cleanly", "err", err)
		return exitFailure
	}
	return exitOK
}
