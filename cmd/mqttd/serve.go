package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/admin"
	"github.com/mqttd/mqttd/internal/mqtt"
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
	log := cfg.Logging.NewLogger(stderr)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	source := cfg.File()
	if source == "" {
		source = "built-in defaults"
	}
	log.Info("starting", "version", mqtt.Version, "name", cfg.Name, "config", source)

	opts.Logger = log
	b, err := mqtt.New(opts)
	if err != nil {
		log.Error("invalid broker options; fix the configuration", "err", err)
		return exitUsage
	}
	if err := b.Start(); err != nil {
		log.Error("cannot start the broker; if a port is in use, stop what holds it or change the listener's bind", "err", err)
		return exitFailure
	}

	var stopping atomic.Bool
	ready := func() error {
		switch {
		case stopping.Load():
			return errors.New("shutting down")
		case !b.Ready():
			return errors.New("broker listeners are not up")
		}
		return nil
	}
	var adm *admin.Server
	if cfg.Admin.Bind != "" {
		adm, err = admin.Listen(cfg.Admin.Bind, admin.NewHandler(b, ready, admin.NewRegistry()), log)
		if err != nil {
			log.Error("cannot start the admin listener", "err", err)
			closeBroker(b, cfg.ShutdownGrace, log)
			return exitFailure
		}
		log.Info("admin listening", "addr", adm.Addr().String(), "paths", "/healthz /readyz /metrics")
	}
	for _, lc := range opts.Listeners {
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

	<-ctx.Done()
	log.Info("shutting down", "reason", context.Cause(ctx).Error(), "grace", cfg.ShutdownGrace.String())
	stopping.Store(true)
	code := closeBroker(b, cfg.ShutdownGrace, log)
	if adm != nil {
		actx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		if err := adm.Shutdown(actx); err != nil {
			log.Warn("admin listener did not stop cleanly", "err", err)
		}
		cancel()
	}
	log.Info("stopped")
	return code
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
