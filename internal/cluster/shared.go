package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// Shared subscriptions span nodes. Each node with members of a shared
// subscription ("$share/group/filter") subscribes to the filter's subjects
// in one NATS queue group per shared subscription, so NATS hands each
// message to one of those nodes, which offers it to one of its members.
// These queue subscriptions live on a second connection that hears its
// own node's publishes too (the first one does not, so that plain
// subscribers are not served twice): the publisher's node routes no shared
// subscription itself, and its own members compete with the others'.

const sharePrefix = "$share/"

// sharedFilter splits "$share/group/filter"; the broker has validated it.
func sharedFilter(filter string) (group, inner string, ok bool) {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return "", "", false
	}
	group, inner, ok = strings.Cut(rest, "/")
	return group, inner, ok
}

// queueName names the NATS queue group of one shared subscription: a hash,
// since share names and filters may hold what queue names may not.
func (r *router) queueName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return r.n.opts.Prefix + "-share-" + hex.EncodeToString(sum[:12])
}

// subscribeShared joins the queue group of the shared subscription id.
func (r *router) subscribeShared(id, group, inner string) []*nats.Subscription {
	var subs []*nats.Subscription
	q := r.queueName(id)
	for _, s := range filterSubjects(inner) {
		sub, err := r.n.ncShared.QueueSubscribe(r.n.subject("m", s), q, func(m *nats.Msg) { r.receiveShared(id, m) })
		if err != nil {
			r.n.log.Warn("cluster: cannot join a shared subscription across nodes", "share", group, "filter", inner, "err", err)
			continue
		}
		subs = append(subs, sub)
	}
	return subs
}

// receiveShared offers a message NATS chose this node for to one of its
// members of the shared subscription id.
func (r *router) receiveShared(id string, m *nats.Msg) {
	b := r.n.broker.Load()
	err := eachEnvelope(m.Data, func(msg *mqtt.Message) { // a batch of one topic (outbox)
		if b != nil {
			b.RouteShared(msg, id)
		}
	})
	if err != nil {
		r.n.stats.RemoteBad.Add(1)
	}
}
