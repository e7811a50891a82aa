// Package mqtt is the broker: listeners, connections, sessions, QoS flows,
// the topic tree, retained messages, wills, keep-alive and $SYS. It knows
// nothing of HTTP or plugins: it calls the small interfaces of Hooks.
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
	"github.com/mqttd/mqttd/internal/store"
)

// Version is the broker version reported in $SYS/broker/version.
const Version = "mqttd 0.1.0"

// Broker is an MQTT broker. Create it with New, open its listeners with
// Start, stop it with Close.
type Broker struct {
	opts   Options
	limits Limits
	log    *slog.Logger
	hooks  Hooks
	// topicsNow is hooks.Topics when it can answer receive checks at once.
	topicsNow TopicCheckerNow
	evBits    atomic.Uint32 // EventMask: the events some sink wants now
	store     *sessionMap
	disk      store.Store // Options.Store; nil = nothing persisted
	subs      *topics.Tree[*Session, subscription]
	shared    *topics.Tree[shareKey, shareSub] // $share/{group}/{filter}
	shareMu   sync.Mutex
	shareRR   map[string]*shareRound // per shared subscription, while it has members
	retain    *topics.Retained[*Message]
	retainMu  retainBound // serialises retained changes so the bounds hold exactly
	stats     counters
	refusals  refusalRing // the latest refused CONNECTs, for operators
	started   time.Time

	ctx    context.Context // ends when Close begins
	cancel context.CancelFunc

	// connMu serialises the session transitions of CONNECT and disconnect
	// (create, resume, take over, discard), which are rare next to publishes.
	connMu sync.Mutex

	mu        sync.Mutex
	listeners []*listener
	conns     map[*client]struct{}
	nconns    atomic.Int64 // open sockets, counted against MaxConnections
	closing   atomic.Bool
	wg        sync.WaitGroup // connection goroutines
	bg        sync.WaitGroup // $SYS and housekeeping

	storeErrLogged atomic.Int64 // when a store failure was last logged (Unix ns)
	wlog           storeLog     // store writes nothing waits for (persist_log.go)
}

// New returns a broker configured by opts. It opens nothing until Start.
func New(opts Options) (*Broker, error) {
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for i, l := range opts.Listeners {
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener-%d", i)
			opts.Listeners[i].Name = l.Name
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("mqtt: listener %q defined twice", l.Name)
		}
		seen[l.Name] = true
		if l.Type != "tcp" && l.Type != "ws" {
			return nil, fmt.Errorf("mqtt: listener %q: type %q is not tcp or ws", l.Name, l.Type)
		}
	}
	b := &Broker{
		opts:    opts,
		limits:  opts.Limits.withDefaults(),
		log:     opts.Logger,
		hooks:   opts.Hooks,
		store:   newSessionMap(),
		disk:    opts.Store,
		subs:    topics.NewTree[*Session, subscription](),
		shared:  topics.NewTree[shareKey, shareSub](),
		shareRR: make(map[string]*shareRound),
		retain:  topics.NewRetainedSized(retainedSize),
		conns:   make(map[*client]struct{}),
	}
	b.refreshEvents()
	b.topicsNow, _ = b.hooks.Topics.(TopicCheckerNow)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Start opens every configured listener and starts $SYS. It returns once all
// listeners accept connections; on error none is left open.
func (b *Broker) Start() error {
	b.emit(&Event{Type: EventBrokerPreStart})
	if b.disk != nil {
		b.startStoreLog()
	}
	if err := b.recover(); err != nil {
		b.stopStoreLog()
		return err
	}
	if c, ok := b.opts.Cluster.(interface{ Recovered() }); ok {
		// The restored sessions are in effect: the cluster may tell the
		// other nodes, before the listeners open.
		c.Recovered()
	}
	b.started = time.Now()
	for _, lc := range b.opts.Listeners {
		l, err := b.listen(lc)
		if err != nil {
			b.closeListeners()
			b.stopStoreLog()
			return err
		}
		b.mu.Lock()
		b.listeners = append(b.listeners, l)
		b.mu.Unlock()
		b.log.Debug("listening", "listener", lc.Name, "type", l.transport, "addr", l.Addr().String())
	}
	b.bg.Add(1)
	go b.housekeeping()
	b.emit(&Event{Type: EventBrokerPostStart})
	return nil
}

// Addr is the bound address of the named listener, or nil.
func (b *Broker) Addr(name string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		if l.name == name {
			return l.Addr()
		}
	}
	return nil
}

// Ready reports whether the broker has started and is not shutting down.
func (b *Broker) Ready() bool {
	b.mu.Lock()
	n := len(b.listeners)
	b.mu.Unlock()
	return n > 0 && !b.closing.Load()
}

// Close stops accepting, disconnects every client (flushing what was already
// written to them), and waits for their goroutines until ctx ends, after
// which the remaining connections are cut. Wills are not published for
// clients the broker itself disconnects on shutdown.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closing.Swap(true)
	b.mu.Unlock()
	if already {
		return errors.New("mqtt: broker already closed")
	}
	b.emit(&Event{Type: EventBrokerPreShutdown})
	b.closeListeners()
	b.cancel()
	b.mu.Lock()
	for c := range b.conns {
		c.shutdown()
	}
	b.mu.Unlock()

	done := make(chan struct{})
	go func() { b.wg.Wait(); b.bg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		b.mu.Lock()
		for c := range b.conns {
			c.conn.Close()
		}
		b.mu.Unlock()
		<-done
	}
	b.stopStoreLog() // after every connection has written its session
	b.emit(&Event{Type: EventBrokerPostShutdown})
	return err
}

func (b *Broker) closeListeners() {
	b.mu.Lock()
	ls := b.listeners
	b.mu.Unlock()
	for _, l := range ls {
		l.close()
	}
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	s := &b.stats
	st := Stats{
		ClientsConnected:   s.clientsConnected.Load(),
		ClientsMaximum:     s.clientsMaximum.Load(),
		ClientsTotal:       s.clientsTotal.Load(),
		ConnectionsRefused: s.connsRefused.Load(),
		MessagesIn:         s.msgsIn.Load(),
		MessagesOut:        s.msgsOut.Load(),
		BytesIn:            s.bytesIn.Load(),
		BytesOut:           s.bytesOut.Load(),
		PacketsIn:          s.pktsIn.Load(),
		PacketsOut:         s.pktsOut.Load(),
		Subscriptions:      int64(b.subs.Len() + b.shared.Len()),
		Retained:           int64(b.retain.Len()),
		RetainedBytes:      int64(b.retainedBytes()),
		RetainedRefused:    s.retainedRefused.Load(),
		DroppedQoS0:        s.droppedQoS0.Load(),
		DroppedQueueFull:   s.droppedQueued.Load(),
		DroppedTooLarge:    s.droppedTooLarge.Load(),
		DroppedExpired:     s.droppedExpired.Load(),
		DroppedSys:         s.droppedSys.Load(),
		DroppedDenied:      s.droppedDenied.Load(),
		DroppedWillDenied:  s.droppedWill.Load(),
		DroppedShareDenied: s.droppedShare.Load(),
		Malformed:          s.malformed.Load(),
		AuthExchangesCut:   s.authExchangeCut.Load(),
		KeepAliveExpired:   s.keepAliveExpired.Load(),
		Takeovers:          s.takeovers.Load(),
		AuthRejected:       s.authRejected.Load(),
		StoreErrors:        s.storeErrors.Load(),
		StoreRefused:       s.storeRefused.Load(),

		QueueOverruns:        s.queueOverruns.Load(),
		AcksHeld:             s.acksHeld.Load(),
		PublishersHeld:       s.publishersHeld.Load(),
		PublishersHeldMillis: s.heldNanos.Load() / 1e6,
		PublisherReadPauses:  s.readPauses.Load(),
		SlowSubscribersCut:   s.slowSubsCut.Load(),
	}
	if !b.started.IsZero() {
		st.UptimeSeconds = int64(time.Since(b.started).Seconds())
	}
	b.store.Range(func(ss *Session) bool {
		ss.mu.Lock()
		if ss.client == nil {
			st.ClientsPersisted++
		}
		st.Inflight += int64(ss.inflight.live)
		st.Queued += int64(ss.queuedLocked())
		ss.mu.Unlock()
		return true
	})
	return st
}

// emit hands e to the event sink when it wants e's type.
func (b *Broker) emit(e *Event) {
	if b.evMask().Has(e.Type) {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		b.hooks.Events.Event(e)
	}
}

// evMask is the set of events worth building: an event outside it costs one
// atomic load.
func (b *Broker) evMask() EventMask { return EventMask(b.evBits.Load()) }

// refreshEvents re-reads what the event sink wants. It runs at New and
// every second, so a sink that learns its wants late (an HTTP plugin's
// manifest) stops the broker building events it would only drop.
func (b *Broker) refreshEvents() {
	if b.hooks.Events != nil {
		b.evBits.Store(uint32(b.hooks.Events.Wants()))
	}
}

// housekeeping expires offline sessions.
func (b *Broker) housekeeping() {
	defer b.bg.Done()
	var sysTick <-chan time.Time
	if b.opts.SysInterval > 0 {
		t := time.NewTicker(b.opts.SysInterval)
		defer t.Stop()
		sysTick = t.C
		b.publishSys()
	}
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-sysTick:
			b.publishSys()
		case now := <-sweep.C:
			b.expireSessions(now)
			b.refreshEvents()
		}
	}
}

func (b *Broker) expireSessions(now time.Time) {
	b.store.Range(func(s *Session) bool {
		s.mu.Lock()
		due := s.client == nil && !s.offlineSince.IsZero() && s.expiry != sessionNeverExpires &&
			now.Sub(s.offlineSince) >= time.Duration(s.expiry)*time.Second
		s.mu.Unlock()
		if due {
			b.connMu.Lock()
			s.mu.Lock()
			still := s.client == nil // not resumed meanwhile
			s.mu.Unlock()
			var will *clientWill
			if still {
				will = b.discardSession(s)
			}
			b.connMu.Unlock()
			b.publishWill(will)
		}
		return true
	})
}

// discardSession removes s and its subscriptions. Caller holds connMu. It
// returns the session's delayed will, which goes out when the session ends
// ([MQTT5-3.1.2-8], whichever comes first); the caller publishes it once it
// has released connMu, since the will's topic check may wait on a plugin.
func (b *Broker) discardSession(s *Session) *clientWill {
	s.mu.Lock()
	will := b.emptySessionLocked(s)
	b.forgetSessionLocked(s)
	s.mu.Unlock()
	if b.dropSession(s) {
		b.release(s.id)
	}
	if b.closing.Load() {
		return nil
	}
	return will
}

// emptySessionLocked takes s's subscriptions out of the topic trees, empties
// its window and queue, and stops its delayed will, which it returns.
// Caller holds s.mu.
func (b *Broker) emptySessionLocked(s *Session) *clientWill {
	for f := range s.subs {
		b.unsubscribe(s, f)
	}
	s.subs = map[string]subscription{}
	s.inflight = inflightRing{}
	s.queue.reset()
	will := s.pendingWill
	s.pendingWill = nil
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	return will
}

// dropSession removes s from the session table if it is still the session
// of its client id, and reports whether it was.
func (b *Broker) dropSession(s *Session) bool {
	if cur, ok := b.store.Get(s.id); ok && cur == s {
		b.store.Delete(s.id)
		return true
	}
	return false
}

// unsubscribe removes s's subscription to filter (plain or shared) from the
// topic trees. Caller holds s.mu.
func (b *Broker) unsubscribe(s *Session, filter string) {
	if group, inner, ok := parseShared(filter); ok && group != "" {
		b.unsubscribeShared(s, group, inner, filter)
		b.interest(filter, false)
		return
	}
	if b.subs.Unsubscribe(filter, s) {
		b.interest(filter, false)
	}
}
