package mqtt

import (
	"sync"
	"sync/atomic"
	"time"
)

// subscription is what a session asked for on one topic filter. It is kept
// small and pointer-free: the topic tree copies it into every match of
// every publish.
type subscription struct {
	qos   byte
	opts  byte   // subNoLocal | subRAP
	subID uint32 // MQTT 5 Subscription Identifier; 0 = none
	// cover is the subscriber's Login when its grants allow the receive of
	// every topic the filter matches (Login.receiveCover): a delivery
	// through the subscription skips the grant match while that Login is
	// still the client's. nil: each delivery matches the grants.
	cover *Login
}

const (
	subNoLocal = 1 << iota // MQTT 5 No Local: not the subscriber's own publishes
	subRAP                 // MQTT 5 Retain As Published
)

func (s subscription) noLocal() bool { return s.opts&subNoLocal != 0 }
func (s subscription) rap() bool     { return s.opts&subRAP != 0 }

// delivery is one message on its way to one session.
type delivery struct {
	msg    *Message
	qos    byte     // min(publish QoS, subscription QoS)
	retain bool     // RETAIN flag to send
	subIDs []uint32 // MQTT 5 Subscription Identifiers of the matching subscriptions
	group  string   // set when delivered through a shared subscription
	// seq is the delivery's place in the session's stored queue (Options.Store);
	// 0 when it is not stored (clean session, QoS 0, no store).
	seq uint64
	// refused lists the members of group whose receive check denied this
	// message already (Session.seq), so a denial found on the writer hands
	// it to one not yet tried; nil until a member refuses.
	refused *shareRefusals

	// cover is the mark of the subscription it came through
	// (subscription.cover): while it is the client's Login, the
	// receiver's grants allow it without a match.
	cover *Login

	// inlineMissed: the in-line receive check (deliverCheckedInline) could
	// not answer, so the writer's check need not try in line again.
	inlineMissed bool

	// overrun: a shared-subscription delivery that may be queued past the
	// bound (offerShared's last resort; see queueOnline).
	overrun bool
}

// sessionNeverExpires is the MQTT 5 Session Expiry Interval meaning "never".
const sessionNeverExpires = 0xFFFFFFFF

// Session is the state the broker keeps for a client id: its subscriptions,
// the outbound messages inflight or queued, and the inbound QoS 2 packet ids
// awaiting PUBREL. A persistent session outlives its connection.
//
// mu guards everything below it, including the attached connection's write
// buffer, so that a publisher routing to this session takes one lock.
type Session struct {
	id    string
	seq   uint64 // unique per broker; orders sessions when de-duplicating matches
	owner string // identity of the client that made it (user name, certificate); see client.identity

	mu           sync.Mutex
	client       *client     // attached connection; nil while offline
	clean        bool        // discarded at disconnect (3.1.1 clean session, or MQTT 5 expiry 0)
	expiry       uint32      // seconds an offline session is kept (MQTT 5; 3.1.1: never)
	window       int         // outbound inflight window: min(max-inflight, client's Receive Maximum)
	willTimer    *time.Timer // a delayed will waiting to be published (MQTT 5 Will Delay)
	pendingWill  *clientWill // the will willTimer will publish
	subs         map[string]subscription
	inflight     inflightRing
	nextID       uint16
	queue        deliveryQueue
	inQoS2       map[uint16]struct{}
	offlineSince time.Time
	dropLogged   time.Time // last time a queue-full drop was logged
	will         *Message  // the attached connection's will, kept in the stored record
	willDelay    uint32
	version      byte // protocol level of the CONNECT that made or resumed it
	disk         diskState
	// waiters are the publishers whose acknowledgements wait for this
	// session's queue to have room again, behind the episode they wait in
	// (backpressure.go).
	waiters []*client
	behind  *behindWatch
	// resuming: a new connection is taking the session over. The old one
	// is detached first, and until the new one is attached the session
	// has no client, yet it is not offline: a publisher held back by the
	// old connection, released as that one ends, must be held again for
	// the new one rather than have its messages dropped past max-queued
	// (mayOverrunLocked).
	resuming bool
	// unstored is set, for good, when the session's stored copy is deleted:
	// a PUBLISH batch still to be committed then leaves it out (read
	// without s.mu, under the pending-write lock).
	unstored atomic.Bool
	// movedAway: another node of a cluster sharing the store has the
	// session now; this node writes nothing more of it.
	movedAway bool
}

var sessionSeq atomic.Uint64

func newSession(id string, clean bool) *Session {
	return &Session{id: id, seq: sessionSeq.Add(1), clean: clean, subs: make(map[string]subscription)}
}

// ClientID is the client id the session belongs to.
func (s *Session) ClientID() string { return s.id }

// nextPacketID hands out ids in sequence, skipping 0 ([MQTT-2.3.1-1]).
// Sequential ids in a window smaller than 65535 cannot collide with one still
// inflight, so no lookup is needed.
func (s *Session) nextPacketID() uint16 {
	s.nextID++
	if s.nextID == 0 {
		s.nextID = 1
	}
	return s.nextID
}

// sessionMap keeps the broker's sessions by client id, in memory. What
// must outlive the process is written to Options.Store as well (persist.go).
type sessionMap struct {
	mu sync.RWMutex
	m  map[string]*Session
}

func newSessionMap() *sessionMap { return &sessionMap{m: make(map[string]*Session)} }

func (m *sessionMap) Get(id string) (*Session, bool) {
	m.mu.RLock()
	s, ok := m.m[id]
	m.mu.RUnlock()
	return s, ok
}

func (m *sessionMap) Put(s *Session) {
	m.mu.Lock()
	m.m[s.id] = s
	m.mu.Unlock()
}

func (m *sessionMap) Delete(id string) {
	m.mu.Lock()
	delete(m.m, id)
	m.mu.Unlock()
}

func (m *sessionMap) Range(fn func(s *Session) bool) {
	m.mu.RLock()
	all := make([]*Session, 0, len(m.m))
	for _, s := range m.m {
		all = append(all, s)
	}
	m.mu.RUnlock()
	for _, s := range all {
		if !fn(s) {
			return
		}
	}
}

func (m *sessionMap) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}
