package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// brokerCounter reads a counter of the attached broker (0 before Start).
type brokerCounter struct {
	n *Node
	f func(*mqtt.Broker) int64
}

func (c brokerCounter) Load() int64 {
	if b := c.n.broker.Load(); b != nil {
		return c.f(b)
	}
	return 0
}

func brokerCount(n *Node, f func(*mqtt.Broker) int64) brokerCounter { return brokerCounter{n, f} }

// Register exports the node's state and failure counters on reg.
func (n *Node) Register(reg prometheus.Registerer) error {
	counter := func(name, help string, v interface{ Load() int64 }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	s := &n.stats
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqttd_cluster_connected",
			Help: "1 while this node reaches NATS, else 0"}, func() float64 {
			if n.Connected() {
				return 1
			}
			return 0
		}),
		counter("mqttd_cluster_forward_failed_total", "messages not handed to the other nodes (too large, topic too long, NATS out of reach)", &s.ForwardFailed),
		counter("mqttd_cluster_forward_unconfirmed_total", "QoS 1/2 messages the nodes subscribed to their topic did not confirm within cluster.forward-timeout, or published while a gone node's sessions were not yet adopted (the publisher is refused)", &s.ForwardUnconfirmed),
		counter("mqttd_cluster_retained_failed_total", "retained messages not stored in the cluster's bucket (a client's publish of one is refused)", &s.RetainFailed),
		counter("mqttd_cluster_claim_failed_total", "client ids this node could not claim in the cluster", &s.ClaimFailed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqttd_cluster_forward_all",
			Help: "1 while this node forwards every message to NATS (another node's interest is not known here), else 0"}, func() float64 {
			if n.Forwarding() {
				return 1
			}
			return 0
		}),
		counter("mqttd_cluster_forwarded_total", "messages handed to NATS for other nodes (or for shared subscriptions)", &s.Forwarded),
		counter("mqttd_cluster_forward_skipped_total", "messages kept off NATS: no other node subscribed to their topic", &s.ForwardSkipped),
		counter("mqttd_cluster_interest_timeouts_total", "other nodes that did not acknowledge a new subscription within cluster.interest-timeout", &s.InterestTimeouts),
		counter("mqttd_cluster_interest_resyncs_total", "lost interest announcements noticed (the sender's filters fetched again)", &s.InterestResyncs),
		counter("mqttd_cluster_handovers_total", "persistent sessions another node let go of for a client that connected here (shared store)", &s.HandedOver),
		counter("mqttd_cluster_handover_refused_total", "CONNECTs refused because the node holding the session did not let it go within cluster.handover-timeout", &s.HandoverRefused),
		counter("mqttd_cluster_handover_duplicates_total", "messages both nodes queued while a session moved here, removed so the client gets them once", brokerCount(n, (*mqtt.Broker).HandoverDuplicates)),
		counter("mqttd_cluster_sessions_adopted_total", "persistent sessions of dead nodes this node loaded (shared store)", &s.Adopted),
		counter("mqttd_cluster_receive_dropped_total", "times messages from other nodes were dropped because routing them fell behind (cluster.receive-queue full)", &s.ReceiveDropped),
		counter("mqttd_cluster_malformed_total", "messages from other nodes or the retained bucket that did not decode", &s.RemoteBad),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
