package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxPacketSizeLimit is the largest packet MQTT can frame: a remaining
// length of 268,435,455 plus a 5-byte fixed header (Remaining Length:
// MQTT 3.1.1 section 2.2.3, 5.0 section 2.1.4).
const maxPacketSizeLimit = 268435455 + 5

// validate checks what decoding cannot: ranges, enumerations, and keys that
// only make sense together. It also fills the defaults that depend on other
// keys (a ws listener's path).
func (l *loader) validate(c *Config) []error {
	var errs []error
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, l.errorf("name", "is empty (give the node a name, or remove the key to use the host name)"))
	}
	binds, lerrs := l.validateListeners(c)
	errs = append(errs, lerrs...)
	errs = append(errs, l.validateLimits(c)...)
	errs = append(errs, l.validateStorage(c)...)
	errs = append(errs, l.validateAdmin(c, binds)...)
	errs = append(errs, l.validatePlugins(c)...)
	errs = append(errs, l.validateCluster(c)...)
	return append(errs, l.validateLogging(c)...)
}

// validateListeners checks and normalises each listener (type, bind, path,
// TLS files). It returns the binds in use, each with the key of its
// listener, for the admin listener's check.
func (l *loader) validateListeners(c *Config) (map[string]string, []error) {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	if len(c.Listeners) == 0 {
		add(l.errorf("listeners", "no listener is defined (add one, e.g. default: {type: tcp, bind: \":1883\"}, or remove the key for that default)"))
	}
	binds := map[string]string{} // bind -> key of the listener that has it
	for _, name := range sortedKeys(c.Listeners) {
		ln := c.Listeners[name]
		key := "listeners." + name
		ln.Type = strings.ToLower(strings.TrimSpace(ln.Type))
		switch ln.Type {
		case "":
			ln.Type = "tcp"
		case "tcp", "ws":
		default:
			add(l.errorf(key+".type", "%q is not a listener type (use tcp or ws; add tls: for MQTTS or WSS)", ln.Type))
		}
		if err := checkBind(ln.Bind); err != nil {
			add(l.errorf(key+".bind", "%v", err))
		} else if other, dup := binds[ln.Bind]; dup && !strings.HasSuffix(ln.Bind, ":0") {
			add(l.errorf(key+".bind", "%q is also the bind of %s (give each listener its own port)", ln.Bind, other))
		} else {
			binds[ln.Bind] = key
		}
		switch {
		case ln.Type == "ws" && ln.Path == "":
			ln.Path = "/mqtt"
		case ln.Type == "ws" && !strings.HasPrefix(ln.Path, "/"):
			add(l.errorf(key+".path", "%q does not start with / (e.g. /mqtt)", ln.Path))
		case ln.Type == "tcp" && ln.Path != "":
			add(l.errorf(key+".path", "%q is set but only a ws listener has a path (remove it, or set type: ws)", ln.Path))
		}
		t := ln.TLS
		switch {
		case t.Cert != "" && t.Key == "":
			add(l.errorf(key+".tls.key", "is missing: tls.cert is set, so the listener needs its private key (set %s.tls.key to a PEM key file)", key))
		case t.Key != "" && t.Cert == "":
			add(l.errorf(key+".tls.cert", "is missing: tls.key is set, so the listener needs its certificate (set %s.tls.cert to a PEM certificate file)", key))
		case t.ClientCA != "" && t.Cert == "":
			add(l.errorf(key+".tls.cert", "is missing: tls.client-ca asks for mutual TLS, which needs a server certificate and key (set %[1]s.tls.cert and %[1]s.tls.key)", key))
		}
		c.Listeners[name] = ln
	}
	return binds, errs
}

// validateLimits checks the limits and the other numeric keys.
func (l *loader) validateLimits(c *Config) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	lim := &c.Limits
	chk := bounds{l, &errs}
	if lim.MaxPacketSize < 64 || lim.MaxPacketSize > maxPacketSizeLimit {
		add(l.errorf("limits.max-packet-size", "%s is out of range (use 64 to 268435460 bytes, e.g. 1MiB)", lim.MaxPacketSize))
	}
	chk.intRange("limits.max-connections", lim.MaxConnections, 1, 1<<31-1)
	chk.intRange("limits.max-inflight", lim.MaxInflight, 1, 65535)
	chk.intRange("limits.max-queued", lim.MaxQueued, 1, 1<<31-1)
	if lim.MaxQueuedBytes < 1 {
		add(l.errorf("limits.max-queued-bytes", "%s is out of range (use at least 1, e.g. 16MiB)", lim.MaxQueuedBytes))
	}
	if lim.MaxConnectSize < 64 || lim.MaxConnectSize > maxPacketSizeLimit {
		add(l.errorf("limits.max-connect-size", "%s is out of range (use 64 to 268435460 bytes, e.g. 64KiB)", lim.MaxConnectSize))
	}
	if lim.MaxOutboundBytes < 1 {
		add(l.errorf("limits.max-outbound-bytes", "%s is out of range (use at least 1, e.g. 4MiB)", lim.MaxOutboundBytes))
	}
	chk.intRange("limits.max-inbound-qos2", lim.MaxInboundQoS2, 1, 65535)
	chk.positive("limits.connect-timeout", lim.ConnectTimeout)
	chk.positive("limits.write-timeout", lim.WriteTimeout)
	chk.intRange("limits.max-keep-alive", lim.MaxKeepAlive, 0, 65535)
	chk.intRange("limits.topic-alias-maximum", lim.TopicAliasMaximum, 1, 65535)
	chk.intRange("limits.auth-exchange-steps", lim.AuthExchangeSteps, 1, 1000)
	chk.positive("limits.auth-exchange-timeout", lim.AuthExchangeTimeout)
	chk.intRange("features.maximum-qos", c.Features.MaximumQoS, 0, 2)
	chk.notNegative("limits.session-expiry", lim.SessionExpiry)
	chk.intRange("limits.max-retained", lim.MaxRetained, 0, 1<<31-1)
	chk.notNegative("limits.slow-subscriber-timeout", lim.SlowSubscriberTimeout)
	chk.notNegative("sys-interval", c.SysInterval)
	chk.positive("shutdown-grace", c.ShutdownGrace)
	return errs
}

// validateAdmin checks the admin listener's bind, which must not be one a
// broker listener has.
func (l *loader) validateAdmin(c *Config, binds map[string]string) []error {
	if c.Admin.Bind == "" {
		return nil
	}
	if err := checkBind(c.Admin.Bind); err != nil {
		return []error{l.errorf("admin.bind", "%v (or \"\" to disable the admin listener)", err)}
	}
	if other, dup := binds[c.Admin.Bind]; dup && !strings.HasSuffix(c.Admin.Bind, ":0") {
		return []error{l.errorf("admin.bind", "%q is also the bind of %s (give the admin listener its own port)", c.Admin.Bind, other)}
	}
	return nil
}

// validateLogging checks and normalises the logging section.
func (l *loader) validateLogging(c *Config) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	c.Logging.Level = strings.ToLower(strings.TrimSpace(c.Logging.Level))
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		add(l.errorf("logging.level", "%q is not a log level (use debug, info, warn or error)", c.Logging.Level))
	}
	c.Logging.Format = strings.ToLower(strings.TrimSpace(c.Logging.Format))
	switch c.Logging.Format {
	case "text", "json":
	default:
		add(l.errorf("logging.format", "%q is not a log format (use text or json)", c.Logging.Format))
	}
	return errs
}

// bounds appends an error to *errs for each numeric key out of its range,
// in the order checked.
type bounds struct {
	l    *loader
	errs *[]error
}

func (b bounds) add(key, format string, args ...any) {
	*b.errs = append(*b.errs, b.l.errorf(key, format, args...))
}

func (b bounds) intRange(key string, v, lo, hi int) {
	if v < lo || v > hi {
		b.add(key, "%d is out of range (use %d to %d)", v, lo, hi)
	}
}

func (b bounds) atLeast(key string, v, lo int) {
	if v < lo {
		b.add(key, "%d is out of range (use at least %d)", v, lo)
	}
}

// size wants at least one byte; example is a sensible value to suggest.
func (b bounds) size(key string, v ByteSize, example string) {
	if v < 1 {
		b.add(key, "%s is out of range (use at least 1, e.g. %s)", v, example)
	}
}

func (b bounds) fraction(key string, v float64) {
	if v < 0 || v > 1 {
		b.add(key, "%g is out of range (use a fraction from 0 to 1, e.g. 0.1)", v)
	}
}

func (b bounds) positive(key string, d time.Duration) {
	if d <= 0 {
		b.add(key, "%s must be positive (e.g. 10s)", d)
	}
}

func (b bounds) notNegative(key string, d time.Duration) {
	if d < 0 {
		b.add(key, "%s is negative (use 0 or a positive duration, e.g. 1h)", d)
	}
}

// checkBind accepts host:port with a numeric port; the host may be empty
// (all interfaces).
func checkBind(bind string) error {
	if bind == "" {
		return fmt.Errorf("is missing (set host:port, e.g. \":1883\" or \"127.0.0.1:1883\")")
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \":1883\" or \"127.0.0.1:1883\")", bind)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port (use a number from 0 to 65535, e.g. \":1883\")", bind)
	}
	return nil
}
