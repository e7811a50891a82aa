package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// StatsSource is what the probes and /metrics need from the broker: one
// consistent Stats snapshot. It is narrower than Broker so that the
// metrics can be served, and tested, without the REST API.
type StatsSource interface {
	Stats() mqtt.Stats
}

// metric is one series read from a Stats snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*mqtt.Stats) int64
	label string // the value of the "reason" label, for drop counters
}

// Collector exports a broker's Stats as mqttd_* metrics. It takes one
// snapshot per scrape, so every series of a scrape comes from the same
// instant.
type Collector struct {
	src     StatsSource
	metrics []metric
}

// NewCollector returns a collector reading src.
func NewCollector(src StatsSource) *Collector {
	c := &Collector{src: src}
	gauge := func(name, help string, v func(*mqtt.Stats) int64) {
		c.metrics = append(c.metrics, metric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v, ""})
	}
	counter := func(name, help string, v func(*mqtt.Stats) int64) {
		c.metrics = append(c.metrics, metric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v, ""})
	}
	gauge("mqttd_clients_connected", "Clients currently connected.", func(s *mqtt.Stats) int64 { return s.ClientsConnected })
	gauge("mqttd_clients_maximum", "Most clients connected at once since start.", func(s *mqtt.Stats) int64 { return s.ClientsMaximum })
	counter("mqttd_clients_total", "Connections accepted past CONNACK since start.", func(s *mqtt.Stats) int64 { return s.ClientsTotal })
	counter("mqttd_connections_refused_total", "Connections refused for limits.max-connections.", func(s *mqtt.Stats) int64 { return s.ConnectionsRefused })
	counter("mqttd_messages_received_total", "PUBLISH packets received.", func(s *mqtt.Stats) int64 { return s.MessagesIn })
	counter("mqttd_messages_sent_total", "PUBLISH packets sent.", func(s *mqtt.Stats) int64 { return s.MessagesOut })
	counter("mqttd_bytes_received_total", "Bytes read from clients.", func(s *mqtt.Stats) int64 { return s.BytesIn })
	counter("mqttd_bytes_sent_total", "Bytes written to clients.", func(s *mqtt.Stats) int64 { return s.BytesOut })
	counter("mqttd_packets_received_total", "MQTT packets received.", func(s *mqtt.Stats) int64 { return s.PacketsIn })
	counter("mqttd_packets_sent_total", "MQTT packets sent.", func(s *mqtt.Stats) int64 { return s.PacketsOut })
	gauge("mqttd_subscriptions", "Subscriptions held, across all sessions.", func(s *mqtt.Stats) int64 { return s.Subscriptions })
	gauge("mqttd_retained_messages", "Retained messages stored.", func(s *mqtt.Stats) int64 { return s.Retained })
	gauge("mqttd_retained_bytes", "Topic, payload and property bytes of the retained messages (bounded by limits.max-retained-bytes).", func(s *mqtt.Stats) int64 { return s.RetainedBytes })
	counter("mqttd_retained_refused_total", "Retained messages on new topics not kept (still delivered) for limits.max-retained or limits.max-retained-bytes.",
		func(s *mqtt.Stats) int64 { return s.RetainedRefused })
	gauge("mqttd_inflight_messages", "Outbound QoS 1/2 messages awaiting acknowledgement.", func(s *mqtt.Stats) int64 { return s.Inflight })
	gauge("mqttd_queued_messages", "Messages queued for offline or slow sessions.", func(s *mqtt.Stats) int64 { return s.Queued })
	gauge("mqttd_sessions_persisted", "Sessions kept for offline clients.", func(s *mqtt.Stats) int64 { return s.ClientsPersisted })
	dropped := prometheus.NewDesc("mqttd_messages_dropped_total", "Messages dropped, by reason.", []string{"reason"}, nil)
	for _, d := range []struct {
		reason string
		v      func(*mqtt.Stats) int64
	}{
		{"qos0_slow_client", func(s *mqtt.Stats) int64 { return s.DroppedQoS0 }},
		{"queue_full", func(s *mqtt.Stats) int64 { return s.DroppedQueueFull }},
		{"expired", func(s *mqtt.Stats) int64 { return s.DroppedExpired }},
		{"too_large", func(s *mqtt.Stats) int64 { return s.DroppedTooLarge }},
		{"sys_topic", func(s *mqtt.Stats) int64 { return s.DroppedSys }},
		{"denied", func(s *mqtt.Stats) int64 { return s.DroppedDenied }},
		{"will_denied", func(s *mqtt.Stats) int64 { return s.DroppedWillDenied }},
		{"share_denied", func(s *mqtt.Stats) int64 { return s.DroppedShareDenied }},
	} {
		c.metrics = append(c.metrics, metric{dropped, prometheus.CounterValue, d.v, d.reason})
	}
	counter("mqttd_queue_overruns_total", "QoS 1/2 messages queued past limits.max-queued for an online subscriber, their publisher held back.", func(s *mqtt.Stats) int64 { return s.QueueOverruns })
	counter("mqttd_publisher_acks_held_total", "PUBACK/PUBREC held back until the subscribers had room.", func(s *mqtt.Stats) int64 { return s.AcksHeld })
	counter("mqttd_publishers_held_total", "Times a publisher began having its acknowledgements held back.", func(s *mqtt.Stats) int64 { return s.PublishersHeld })
	counter("mqttd_publishers_held_milliseconds_total", "Time publishers spent with acknowledgements held back.", func(s *mqtt.Stats) int64 { return s.PublishersHeldMillis })
	counter("mqttd_publisher_read_pauses_total", "Times reading from a publisher stopped at limits.max-inbound-qos2 held acknowledgements.", func(s *mqtt.Stats) int64 { return s.PublisherReadPauses })
	counter("mqttd_slow_subscribers_disconnected_total", "Subscribers disconnected for holding publishers back longer than limits.slow-subscriber-timeout.", func(s *mqtt.Stats) int64 { return s.SlowSubscribersCut })
	counter("mqttd_malformed_packets_total", "Connections closed for a malformed packet or protocol violation.", func(s *mqtt.Stats) int64 { return s.Malformed })
	counter("mqttd_keepalive_timeouts_total", "Connections closed for exceeding 1.5 x keep-alive.", func(s *mqtt.Stats) int64 { return s.KeepAliveExpired })
	counter("mqttd_takeovers_total", "Connections closed because a new one took over their client id.", func(s *mqtt.Stats) int64 { return s.Takeovers })
	counter("mqttd_auth_rejected_total", "CONNECTs rejected by authentication.", func(s *mqtt.Stats) int64 { return s.AuthRejected })
	counter("mqttd_auth_exchanges_cut_total", "MQTT 5 enhanced-authentication exchanges ended by limits.auth-exchange-steps or limits.auth-exchange-timeout.",
		func(s *mqtt.Stats) int64 { return s.AuthExchangesCut })
	counter("mqttd_store_publishes_refused_total", "QoS 1/2 publishes refused (MQTT 5: 0x97; 3.1.1: connection closed) because the store write they needed failed.", func(s *mqtt.Stats) int64 { return s.StoreRefused })
	gauge("mqttd_uptime_seconds", "Seconds since the broker started.", func(s *mqtt.Stats) int64 { return s.UptimeSeconds })
	return c
}

// Describe implements prometheus.Collector: each metric's descriptor
// once, although several series (one per label value) share it.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, m := range c.metrics {
		if !seen[m.desc] {
			seen[m.desc] = true
			ch <- m.desc
		}
	}
}

// Collect implements prometheus.Collector: one Stats snapshot per scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for _, m := range c.metrics {
		var labels []string
		if m.label != "" {
			labels = []string{m.label}
		}
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(&s)), labels...)
	}
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors; NewHandler adds the broker's.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
