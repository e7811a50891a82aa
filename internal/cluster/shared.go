package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync/atomic"

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
// connected members of the shared subscription id. Without one here it
// looks for one on another node, then for a persistent member, here first
// (shareElsewhere). A QoS 1/2 message its publisher waits for is confirmed
// under the group's name once a member took it: handed to a connection, or
// in the store for a persistent session.
func (r *router) receiveShared(id string, m *nats.Msg) {
	b := r.n.broker.Load()
	var msgs []*mqtt.Message // a batch of one topic (outbox)
	err := eachEnvelope(m.Data, func(msg *mqtt.Message) { msgs = append(msgs, msg) })
	if err != nil {
		// Malformed: what decoded is placed, but nothing is answered, so
		// its publishers are refused and send again.
		r.n.stats.RemoteBad.Add(1)
	}
	if b == nil {
		return
	}
	var done func(error)
	if m.Reply != "" && err == nil && len(msgs) > 0 {
		// One answer for the batch, once every message in it was taken;
		// one not taken leaves the batch unanswered.
		reply, token := m.Reply, r.shareToken(id)
		var left atomic.Int64
		var failed atomic.Bool
		left.Store(int64(len(msgs)))
		done = func(err error) {
			if err != nil {
				failed.Store(true)
			}
			if left.Add(-1) == 0 && !failed.Load() {
				r.answerShared(reply, token)
			}
		}
	}
	for _, msg := range msgs {
		r.placeShared(b, msg, id, done)
	}
}

// placeShared offers one message to a connected member here, else looks
// elsewhere (shareElsewhere). done, when set, is called once the message
// was taken, or never.
func (r *router) placeShared(b *mqtt.Broker, msg *mqtt.Message, id string, done func(error)) {
	if b.RouteShared(msg, id, true, done) {
		return
	}
	if len(r.peers.sharers(id)) == 0 {
		// No other node to ask: queued here for a persistent member, in
		// the order NATS delivered.
		if !b.RouteShared(msg, id, false, done) {
			b.SharedDropped()
		}
		return
	}
	// Asking other nodes takes round trips: not on this subscription's
	// goroutine, which the group's next messages wait on.
	n := r.n
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.closed {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		r.shareElsewhere(b, msg, id, done)
	}()
}

// shareElsewhere places a message for the shared subscription id that no
// connected member here took: with a connected member on another node,
// else with a persistent member (stored for its return), here first. What
// nobody takes is counted as dropped; a publisher waiting for it is then
// refused after the forward timeout, and sends it again.
func (r *router) shareElsewhere(b *mqtt.Broker, msg *mqtt.Message, id string, done func(error)) {
	if r.handShared(msg, id, true) {
		if done != nil {
			done(nil)
		}
		return
	}
	if b.RouteShared(msg, id, false, done) {
		return
	}
	if r.handShared(msg, id, false) {
		if done != nil {
			done(nil)
		}
		return
	}
	b.SharedDropped()
}

// shareToken is the name under which the node that takes a message for
// the shared subscription id confirms it to the publishing node: the
// publisher does not know which node NATS picks.
func (r *router) shareToken(id string) string { return r.peers.shareToken(id) }

func (t *peerTable) shareToken(id string) string {
	if v, ok := t.tokens.Load(id); ok {
		return v.(string)
	}
	tok := shareTokenPrefix + t.n.routes.queueName(id)
	t.tokens.Store(strings.Clone(id), tok)
	return tok
}

// shareTokenPrefix starts a shared subscription's name in confirmations,
// where the other names are nodes'.
const shareTokenPrefix = "$share:"

// answerShared confirms a forwarded message under a shared subscription's
// token, batched per publishing node and token as the node's own answers
// are. They go out on the connection that hears its own node, since the
// publisher may be this node.
func (r *router) answerShared(reply, token string) { r.peers.owed.owe(reply, token) }

func (n *Node) shareSubject() string { return n.subject("node", n.opts.Name, "share") }

var _ mqtt.SharedCluster = (*Node)(nil)

// HandShared implements mqtt.SharedCluster.
func (n *Node) HandShared(m *mqtt.Message, id string, online bool) bool {
	return n.routes.handShared(m, id, online)
}

// handShared asks the other nodes known to have members of the shared
// subscription id, one at a time from a rotating start, to take m (only
// for a connected member when online), each request bounded by the forward
// timeout. It reports whether one did.
func (r *router) handShared(m *mqtt.Message, id string, online bool) bool {
	nodes := r.peers.sharers(id)
	if len(nodes) == 0 {
		return false
	}
	var data []byte
	data = binary.AppendUvarint(data, uint64(len(id)))
	data = append(data, id...)
	flag := byte(0)
	if online {
		flag = 1
	}
	data = append(data, flag)
	data, err := appendEnvelope(data, m.Topic, m.Payload, m.QoS, m.Retain, m.From, m.Created, m.Props)
	if err != nil {
		return false
	}
	start := int(r.peers.shareNext.Add(1))
	for k := range nodes {
		name := nodes[(start+k)%len(nodes)]
		ctx, cancel := context.WithTimeout(r.n.ctx, r.n.opts.ForwardTimeout)
		resp, err := r.n.nc.RequestWithContext(ctx, r.n.subject("node", name, "share"), data)
		cancel()
		if err == nil && len(resp.Data) == 1 && resp.Data[0] == '1' {
			return true
		}
	}
	return false
}

// onShareRequest takes a message another node hands to this node's
// members of a shared subscription, and answers "1" once one took it (in
// the store, for a persistent member), else "0".
func (r *router) onShareRequest(m *nats.Msg) {
	data := m.Data
	k, w := binary.Uvarint(data)
	if w <= 0 || uint64(len(data)-w) < k+1 {
		r.n.stats.RemoteBad.Add(1)
		return
	}
	id := string(data[w : w+int(k)])
	online := data[w+int(k)] == 1
	msg, err := decodeOwned(data[w+int(k)+1:])
	if err != nil {
		r.n.stats.RemoteBad.Add(1)
		return
	}
	b := r.n.broker.Load()
	if b == nil {
		m.Respond([]byte{'0'})
		return
	}
	took := b.RouteShared(msg, id, online, func(err error) {
		if err == nil {
			m.Respond([]byte{'1'})
		} else {
			m.Respond([]byte{'0'})
		}
	})
	if !took {
		m.Respond([]byte{'0'})
	}
}
