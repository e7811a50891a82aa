package cluster

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// confirms follows this node's forwarded QoS 1/2 messages, by the batch
// they crossed in (one wait and one answer per batch), until every node
// known to subscribe to their topics has answered that it has them: routed
// to its sessions, and in the store for the persistent ones. Core NATS
// carries a message at most once, so the publisher's PUBACK or PUBREC
// waits for these answers; a node that dies after the acknowledgement
// then has the message in the store, where its sessions' adopter finds it.
// An answer missing after cluster.forward-timeout refuses the publisher,
// which sends the message again.
type confirms struct {
	n    *Node
	mu   sync.Mutex
	next uint64
	wait map[uint64]*confirmWait

	// Answers this node owes other nodes, under its own name.
	owed *answers
}

type confirmWait struct {
	topic    string
	left     []string      // nodes yet to answer
	dones    []func(error) // of the batch's QoS 1/2 messages, in order
	deadline time.Time
}

func newConfirms(n *Node) *confirms {
	return &confirms{n: n, wait: make(map[uint64]*confirmWait), owed: newAnswers()}
}

func (n *Node) confirmSubject() string {
	return n.subject("node", n.opts.Name, "confirm")
}

// listen subscribes to the answers and starts sending this node's own and
// ending the waits that ran out.
func (c *confirms) listen() error {
	sub, err := c.n.nc.Subscribe(c.n.confirmSubject(), c.onAnswer)
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1) // a lost answer refuses a publisher
	c.n.wg.Add(2)
	go c.owed.loop(c.n, c.n.nc)
	go c.expireLoop()
	return nil
}

// expect registers a batch of messages on topic that nodes must confirm,
// whose publishers wait in dones, and returns the subject they answer on,
// which carries its id. It keeps topic, nodes and dones.
func (c *confirms) expect(topic string, nodes []string, dones []func(error)) (uint64, string) {
	c.mu.Lock()
	c.next++
	id := c.next
	c.wait[id] = &confirmWait{topic: topic, left: nodes, dones: dones,
		deadline: time.Now().Add(c.n.opts.ForwardTimeout)}
	c.mu.Unlock()
	// The nodes were looked up when the messages were batched: a node
	// that has since stopped subscribing, or gone, was rechecked before
	// this wait existed. Looked at again now, any later change has its
	// own recheck, which finds the wait.
	c.recheckWait(id)
	return id, c.n.confirmSubject() + "." + strconv.FormatUint(id, 10)
}

// recheckWait looks again at the wait id as recheck does, for every node
// it expects.
func (c *confirms) recheckWait(id uint64) {
	var err error
	c.mu.Lock()
	w := c.wait[id]
	if w == nil {
		c.mu.Unlock()
		return
	}
	nodes, gone := c.n.routes.peers.subscribers(w.topic)
	if gone {
		err = mqtt.ErrForwardUnconfirmed
	} else {
		w.left = slices.DeleteFunc(w.left, func(node string) bool { return !slices.Contains(nodes, node) })
	}
	end := gone || len(w.left) == 0
	c.mu.Unlock()
	if end {
		c.finish(id, err)
	}
}

// expireLoop refuses, a few times per forward-timeout, the waits that ran
// out: one timer per message would cost more than the message.
func (c *confirms) expireLoop() {
	defer c.n.wg.Done()
	tick := min(max(c.n.opts.ForwardTimeout/4, 10*time.Millisecond), 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.n.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var late []uint64
		c.mu.Lock()
		for id, w := range c.wait {
			if now.After(w.deadline) {
				late = append(late, id)
			}
		}
		c.mu.Unlock()
		for _, id := range late {
			c.finish(id, mqtt.ErrForwardUnconfirmed)
		}
	}
}

// finish ends the wait id with err, once.
func (c *confirms) finish(id uint64, err error) {
	c.mu.Lock()
	w := c.wait[id]
	delete(c.wait, id)
	c.mu.Unlock()
	if w == nil {
		return
	}
	if err != nil {
		c.n.stats.ForwardUnconfirmed.Add(int64(len(w.dones)))
		c.n.warnUnconfirmed.warn(c.n.log, "cluster: other nodes did not confirm QoS 1/2 messages in time; their publishers are refused",
			"nodes", strings.Join(w.left, ","), "messages", len(w.dones))
	}
	for _, done := range w.dones {
		done(err)
	}
	putDones(w.dones)
}

// onAnswer takes an answer: the answering node's name, a newline, and the
// ids it confirms, comma-separated.
func (c *confirms) onAnswer(m *nats.Msg) {
	node, ids, ok := strings.Cut(string(m.Data), "\n")
	if !ok {
		return
	}
	var ended []uint64
	c.mu.Lock()
	for s := range strings.SplitSeq(ids, ",") {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		w := c.wait[id]
		if w == nil {
			continue
		}
		if i := slices.Index(w.left, node); i >= 0 {
			w.left = slices.Delete(w.left, i, i+1)
		}
		if len(w.left) == 0 {
			ended = append(ended, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ended {
		c.finish(id, nil)
	}
}

// confirm answers a forwarded batch once it is routed and stored here.
func (n *Node) confirm(reply string) { n.confirms.owed.owe(reply, n.opts.Name) }

// recheck looks again at the waits for node, which no longer subscribes to
// some filter: one whose topic it no longer subscribes to at all had no
// subscriber there to answer for (it unsubscribed before the message came),
// and one whose topic a gone node subscribed to is refused at once.
func (c *confirms) recheck(node string) {
	type result struct {
		id  uint64
		err error
	}
	var ends []result
	c.mu.Lock()
	for id, w := range c.wait {
		i := slices.Index(w.left, node)
		if i < 0 {
			continue
		}
		nodes, gone := c.n.routes.peers.subscribers(w.topic)
		switch {
		case gone:
			ends = append(ends, result{id, mqtt.ErrForwardUnconfirmed})
		case !slices.Contains(nodes, node):
			if w.left = slices.Delete(w.left, i, i+1); len(w.left) == 0 {
				ends = append(ends, result{id, nil})
			}
		}
	}
	c.mu.Unlock()
	for _, e := range ends {
		c.finish(e.id, e.err)
	}
}

// refuse ends, refused, the waits for node's answer: a run of it that
// is gone, or replaced by a new one, answers nothing more, and its
// filters are now held as orphans, which may be let go of before a
// recheck would look (the adopter finished first), as if nobody had
// subscribed.
func (c *confirms) refuse(node string) {
	var ends []uint64
	c.mu.Lock()
	for id, w := range c.wait {
		if slices.Contains(w.left, node) {
			ends = append(ends, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ends {
		c.finish(id, mqtt.ErrForwardUnconfirmed)
	}
}

// poke leaves a wake-up on ch unless one is waiting already.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
