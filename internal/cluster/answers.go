package cluster

import (
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// answers gathers the confirmations this node owes publishing nodes for
// batches it took, and sends them from one goroutine (loop): one message
// per publishing node and name for all owed when it wakes, so under load
// answers gather while it sends. A name is this node's own for plain
// subscribers (confirms) or a shared subscription's token (shareToken).
type answers struct {
	mu   sync.Mutex
	owed map[answerDest][]string // ids not answered yet
	wake chan struct{}
}

// answerDest is where answers under one name go: a publishing node's
// confirmation subject.
type answerDest struct{ subject, name string }

func newAnswers() *answers { return &answers{wake: make(chan struct{}, 1)} }

// owe records an answer under name to reply, the subject a forwarded batch
// came with: the publishing node's confirmation subject and the batch's id
// as its last token.
func (a *answers) owe(reply, name string) {
	a.mu.Lock()
	ok := a.oweLocked(reply, name)
	a.mu.Unlock()
	if ok {
		poke(a.wake)
	}
}

func (a *answers) oweLocked(reply, name string) bool {
	i := strings.LastIndexByte(reply, '.')
	if i < 0 {
		return false
	}
	k := answerDest{subject: reply[:i], name: name}
	if a.owed == nil {
		a.owed = make(map[answerDest][]string)
	}
	a.owed[k] = append(a.owed[k], reply[i+1:])
	return true
}

// sendOwed sends what is owed now, from the caller's goroutine: a
// dispatch goroutine answers the batches it routed itself, once its inbox
// is empty, where a hand-off to loop put one more wake-up on the way of
// every confirmation. buf is room for the message, returned for reuse.
func (a *answers) sendOwed(nc *nats.Conn, buf []byte) []byte {
	a.mu.Lock()
	owed := a.owed
	a.owed = nil
	a.mu.Unlock()
	return sendAnswers(nc, owed, buf)
}

// loop sends what is owed on nc, as the name, a newline and the ids
// comma-separated (confirms.onAnswer), until the node closes.
func (a *answers) loop(n *Node, nc *nats.Conn) {
	defer n.wg.Done()
	var buf []byte
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-a.wake:
		}
		buf = a.sendOwed(nc, buf)
	}
}

// sendAnswers publishes owed on nc, a message per destination.
func sendAnswers(nc *nats.Conn, owed map[answerDest][]string, buf []byte) []byte {
	for k, ids := range owed {
		buf = append(append(buf[:0], k.name...), '\n')
		for i, id := range ids {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, id...)
		}
		nc.Publish(k.subject, buf)
	}
	return buf
}
