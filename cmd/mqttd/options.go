package main

import (
	"log/slog"
	"slices"
	"time"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// brokerOptions maps a loaded configuration onto the broker's options.
// Certificates were read and checked by config.Load, so nothing here can
// fail.
func brokerOptions(c *config.Config, log *slog.Logger) mqtt.Options {
	opts := mqtt.Options{
		Name: c.Name,
		Limits: mqtt.Limits{
			MaxPacketSize:     int(c.Limits.MaxPacketSize),
			MaxConnections:    c.Limits.MaxConnections,
			MaxInflight:       c.Limits.MaxInflight,
			MaxQueued:         c.Limits.MaxQueued,
			MaxQueuedBytes:    int(c.Limits.MaxQueuedBytes),
			MaxOutboundBytes:  int(c.Limits.MaxOutboundBytes),
			MaxInboundQoS2:    c.Limits.MaxInboundQoS2,
			ConnectTimeout:    c.Limits.ConnectTimeout,
			MaxConnectSize:    int(c.Limits.MaxConnectSize),
			WriteTimeout:      c.Limits.WriteTimeout,
			MaxKeepAlive:      uint16(c.Limits.MaxKeepAlive),      // validated to 0..65535
			TopicAliasMaximum: uint16(c.Limits.TopicAliasMaximum), // validated to 1..65535
			SessionExpiry:     c.Limits.SessionExpiry,

			SlowSubscriberTimeout: slowSubscriberTimeout(c.Limits.SlowSubscriberTimeout),
			AuthExchangeSteps:     c.Limits.AuthExchangeSteps,
			AuthExchangeTimeout:   c.Limits.AuthExchangeTimeout,
			MaxRetained:           unboundedIfZero(c.Limits.MaxRetained),
			MaxRetainedBytes:      unboundedIfZero(int(c.Limits.MaxRetainedBytes)),
		},
		Features: mqtt.Features{
			CapQoS:            c.Features.MaximumQoS < 2,
			MaximumQoS:        byte(c.Features.MaximumQoS), // validated to 0..2
			NoRetain:          !c.Features.Retain,
			NoWildcardSubs:    !c.Features.WildcardSubscriptions,
			NoSharedSubs:      !c.Features.SharedSubscriptions,
			NoSubscriptionIDs: !c.Features.SubscriptionIdentifiers,
		},
		SysInterval:             c.SysInterval,
		Logger:                  log,
		DisconnectDeniedPublish: c.TopicCheck.DenyPublish == "disconnect",
	}
	if opts.SysInterval == 0 {
		opts.SysInterval = -time.Second // config: 0 disables $SYS; Options reads any value <= 0 as off, negative says so plainly
	}
	names := make([]string, 0, len(c.Listeners))
	for name := range c.Listeners {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		l := c.Listeners[name]
		opts.Listeners = append(opts.Listeners, mqtt.ListenerConfig{
			Name: name,
			Type: l.Type,
			Bind: l.Bind,
			Path: l.Path,
			TLS:  c.ListenerTLS(name),
		})
	}
	return opts
}

// slowSubscriberTimeout maps the config's 0 (never) onto the broker's
// negative: the broker reads 0 as its default.
// unboundedIfZero maps a count or size bound whose 0 means "no bound" in
// the configuration onto the broker's negative, as its 0 means the default.
func unboundedIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func slowSubscriberTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
