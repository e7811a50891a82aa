package config

import "path/filepath"

// DefaultSpoolRoot is the directory under which an HTTP plugin with
// queue.durable spools its events when queue.durable-dir is not set: each
// alias gets events/<alias> in it.
const DefaultSpoolRoot = "data"

// SpoolDir is the directory of alias's durable event spool: its
// queue.durable-dir, else DefaultSpoolRoot/events/<alias>. A relative
// directory is relative to the working directory: a spool is state, not
// configuration.
func (q PluginQueue) SpoolDir(alias string) string {
	if q.DurableDir != "" {
		return q.DurableDir
	}
	return filepath.Join(DefaultSpoolRoot, "events", alias)
}

// validateDurable checks the durable-event keys of a plugin entry.
func (l *loader) validateDurable(key string, p *Plugin) []error {
	q := p.Queue
	var errs []error
	if q.Durable && p.Type != PluginHTTP {
		errs = append(errs, l.errorf(key+".queue.durable", "is for http plugins (type %s keeps its events in memory only)", p.Type))
	}
	if q.DurableMaxBytes < 1 {
		errs = append(errs, l.errorf(key+".queue.durable-max-bytes", "%s is out of range (use at least 1, e.g. 256MiB)", q.DurableMaxBytes))
	}
	return errs
}
