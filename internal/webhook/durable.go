package webhook

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/webhook/spool"
)

// DurableOptions make the plugin's events durable: spooled on disk in Dir
// when its queue is full or it is down, delivered at least once across
// restarts (see batch's durable.go). An empty Dir keeps events in memory
// only.
type DurableOptions struct {
	Dir      string // the spool's directory, one per plugin
	MaxBytes int64  // bytes the spool holds; beyond it the oldest are dropped [256 MiB]
}

// openSpool opens the plugin's spool when its events are durable, and
// hands it to the event pipeline.
func (p *Plugin) openSpool() error {
	d := p.opts.Durable
	if d.Dir == "" {
		return nil
	}
	sp, err := spool.Open(d.Dir, spool.Options{MaxBytes: d.MaxBytes, Logger: p.opts.Logger})
	if err != nil {
		return fmt.Errorf("webhook %s: queue.durable: %w", p.opts.Alias, err)
	}
	if st := sp.Stats(); st.Records > 0 {
		p.opts.Logger.Info("spooled plugin events from before the restart are delivered first",
			"events", st.Records, "bytes", st.Bytes, "dir", sp.Dir())
	}
	p.spool = sp
	p.opts.Queue.Spool = sp
	return nil
}

// closeSpool closes the spool after the pipeline has written its last.
func (p *Plugin) closeSpool() error {
	if p.spool == nil {
		return nil
	}
	return p.spool.Close()
}

// spoolStats are the spool's counters; zero without one.
func (p *Plugin) spoolStats() spool.Stats {
	if p.spool == nil {
		return spool.Stats{}
	}
	return p.spool.Stats()
}
