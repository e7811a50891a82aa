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
	i := strings.LastIndexByte(reply, '.')
	if i < 0 {
		return
	}
	k := answerDest{subject: reply[:i], name: name}
	a.mu.Lock()
	if a.owed == nil {
		a.owed = make(map[answerDest][]string)
	}
	a.owed[k] = append(a.owed[k], reply[i+1:])
	a.mu.Unlock()
	poke(a.wake)
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
		a.mu.Lock()
		owed := a.owed
		a.owed = nil
		a.mu.Unlock()
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
	}
}
