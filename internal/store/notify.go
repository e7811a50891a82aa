package store

import "sync"

// Notifier runs commit callbacks one at a time, in the order they were
// queued, on its own goroutine: a callback never runs inside the commit
// call, and acknowledgements keep commit order. Wait is called on the
// notifier goroutine before each callback (an implementation waits for
// durability there).
type Notifier struct {
	mu      sync.Mutex
	cond    *sync.Cond
	q       []pending
	closing bool
	done    chan struct{}
}

type pending struct {
	wait func() error
	cb   func(error)
}

// NewNotifier starts a notifier; Close stops it after the queued callbacks.
func NewNotifier() *Notifier {
	n := &Notifier{done: make(chan struct{})}
	n.cond = sync.NewCond(&n.mu)
	go n.run()
	return n
}

// Push queues cb to run after wait returns; wait may be nil. After Close,
// Push runs wait and then cb with ErrClosed at once, on the caller's
// goroutine.
func (n *Notifier) Push(wait func() error, cb func(error)) {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		if wait != nil {
			wait()
		}
		cb(ErrClosed)
		return
	}
	n.q = append(n.q, pending{wait, cb})
	n.mu.Unlock()
	n.cond.Signal()
}

func (n *Notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		for len(n.q) == 0 && !n.closing {
			n.cond.Wait()
		}
		q := n.q
		n.q = nil
		stop := n.closing && len(q) == 0
		n.mu.Unlock()
		if stop {
			return
		}
		for _, p := range q {
			var err error
			if p.wait != nil {
				err = p.wait()
			}
			p.cb(err)
		}
	}
}

// Close runs what is queued and stops.
func (n *Notifier) Close() {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	n.cond.Signal()
	<-n.done
}
