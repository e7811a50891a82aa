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

// confirms follows this node's forwarded QoS 1/2 messages until every node
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
}

type confirmWait struct {
	topic string
	left  []string // nodes yet to answer
	done  func(error)
	timer *time.Timer
}

func newConfirms(n *Node) *confirms {
	return &confirms{n: n, wait: make(map[uint64]*confirmWait)}
}

func (n *Node) confirmSubject(id string) string {
	return n.subject("node", n.opts.Name, "confirm", id)
}

// listen subscribes to the answers.
func (c *confirms) listen() error {
	sub, err := c.n.nc.Subscribe(c.n.confirmSubject("*"), c.onAnswer)
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1) // a lost answer refuses a publisher
	return nil
}

// expect registers a message that nodes must confirm and returns the
// subject they answer on.
func (c *confirms) expect(topic string, nodes []string, done func(error)) string {
	c.mu.Lock()
	c.next++
	id := c.next
	w := &confirmWait{topic: strings.Clone(topic), left: nodes, done: done}
	c.wait[id] = w
	// Set under mu: finish reads it after taking mu.
	w.timer = time.AfterFunc(c.n.opts.ForwardTimeout, func() { c.finish(id, mqtt.ErrForwardUnconfirmed) })
	c.mu.Unlock()
	return c.n.confirmSubject(strconv.FormatUint(id, 10))
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
	w.timer.Stop()
	if err != nil {
		c.n.stats.ForwardUnconfirmed.Add(1)
		c.n.warnUnconfirmed.warn(c.n.log, "cluster: other nodes did not confirm a QoS 1/2 message in time; its publisher is refused",
			"nodes", strings.Join(w.left, ","))
	}
	w.done(err)
}

func (c *confirms) onAnswer(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	node := string(m.Data)
	c.mu.Lock()
	w := c.wait[id]
	if w == nil {
		c.mu.Unlock()
		return
	}
	for i, l := range w.left {
		if l == node {
			w.left = append(w.left[:i], w.left[i+1:]...)
			break
		}
	}
	last := len(w.left) == 0
	c.mu.Unlock()
	if last {
		c.finish(id, nil)
	}
}

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

// confirm answers a forwarded message once it is routed and stored here.
func (n *Node) confirm(reply string) {
	if reply != "" {
		n.nc.Publish(reply, []byte(n.opts.Name))
	}
}
