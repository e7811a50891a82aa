package store

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"
)

// NeverExpires is the session expiry meaning "never" (MQTT 5 0xFFFFFFFF;
// what a 3.1.1 persistent session gets).
const NeverExpires = 0xFFFFFFFF

// MessageRecord is an application message at rest.
type MessageRecord struct {
	Topic   string
	Payload []byte
	QoS     byte      // as published; each Delivery carries the QoS it is sent with
	Retain  bool      // the RETAIN flag as published
	From    string    // publishing client id; "" for the broker itself
	Created time.Time // when it entered the broker: Message Expiry counts from here
	// Props is the MQTT 5 property block of the PUBLISH in its wire
	// encoding (nil for 3.1.1), so the store need not know each property.
	Props []byte
}

// SubscriptionRecord is one subscription of a session. Filter is the filter
// as subscribed, "$share/group/filter" for a shared one.
type SubscriptionRecord struct {
	Filter            string
	QoS               byte   // the maximum QoS granted
	NoLocal           bool   // MQTT 5: not sent the session's own publishes
	RetainAsPublished bool   // MQTT 5: RETAIN forwarded as published
	SubscriptionID    uint32 // MQTT 5 Subscription Identifier; 0 = none
}

// SessionRecord is a persistent session at rest.
type SessionRecord struct {
	ClientID string
	// Username and the protocol version are what the session was created
	// with, for the broker's resume policy.
	Username     string
	Version      byte                 // protocol level of that CONNECT: 4 for 3.1.1, 5 for 5.0
	Expiry       uint32               // seconds kept while offline; NeverExpires = never
	OfflineSince time.Time            // zero while connected; expiry counts from here across restarts
	Will         *MessageRecord       // nil when the session has no will
	WillDelay    uint32               // seconds (MQTT 5 Will Delay)
	Subs         []SubscriptionRecord // restored with the session
}

// Delivery is one session's reference to a queued message: what to send it
// with. Seq is assigned by the store when the batch commits; sequence
// numbers grow per session in commit order.
type Delivery struct {
	ClientID string   // the session whose queue holds it
	Seq      uint64   // its place in that queue: Ack and Scan name it
	QoS      byte     // min(publish QoS, subscription QoS)
	Retain   bool     // RETAIN flag to send
	SubIDs   []uint32 // MQTT 5 Subscription Identifiers of the matching subscriptions
	Group    string   // the shared subscription it came through, or ""
}

// Queued is a delivery read back with its message.
type Queued struct {
	Delivery
	Msg *MessageRecord // the body, stored once however many queues reference it
}

// InflightState is where an outbound QoS 1/2 delivery stands.
type InflightState byte

// Outbound in-flight states: which acknowledgement a packet id waits for,
// so a resumed session resends PUBLISH or PUBREL as the protocol requires.
const (
	AwaitAck  InflightState = 1 // QoS 1: PUBACK; QoS 2: PUBREC
	AwaitComp InflightState = 2 // QoS 2: PUBREL sent, awaiting PUBCOMP
)

// InflightRecord is an outbound packet id in flight. Seq is the queue entry
// it carries; once PUBREC has arrived the entry may be acknowledged and only
// the packet id remains (state AwaitComp).
type InflightRecord struct {
	PacketID uint16        // the id on the wire
	Seq      uint64        // the queue entry it carries (see above)
	State    InflightState // the acknowledgement it waits for
}

// Durability says when a commit counts as done.
type Durability byte

// Durability modes, from safest to fastest (ParseDurability reads their
// configuration words).
const (
	// Sync: a commit returns after the write-ahead log holding it has been
	// fsynced; concurrent commits share one fsync.
	Sync Durability = iota
	// Interval: the log is fsynced every sync interval; a crash (even of
	// the process alone, not only of the machine) loses up to one interval
	// of acknowledged commits.
	Interval
	// None: never fsynced except at Close; a crash loses whatever the log
	// had not written out (measured: all of a few hundred recent commits).
	None
)

// ParseDurability maps the configuration words sync, interval and none.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync", "":
		return Sync, nil
	case "interval":
		return Interval, nil
	case "none":
		return None, nil
	}
	return 0, errors.New(`store: durability must be "sync", "interval" or "none", not "` + s + `"`)
}

// String returns the configuration word for d (the inverse of
// ParseDurability), so logs and the admin API show what an operator wrote.
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Interval:
		return "interval"
	case None:
		return "none"
	}
	return "unknown"
}

// Errors every implementation returns, for callers to test with errors.Is.
var (
	// ErrClosed is returned by operations on a store after Close, and
	// passed to a CommitAsync callback queued after it: the batch was not
	// applied, so nothing in it may be acknowledged.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt is wrapped by every decoding failure (a record that is
	// truncated, has trailing bytes or an unknown version), so the caller
	// can tell damaged data from an I/O error and refuse or quarantine.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrUnavailable is wrapped by the commit errors of a store that
	// refuses writes after a write error (a full disk): nothing in the
	// batch was acknowledged. The store logs when it starts refusing and
	// when it takes writes again, so callers need not log each refusal.
	ErrUnavailable = errors.New("store: refusing writes")
)

// Store keeps sessions, retained messages and session queues. All methods
// are safe for concurrent use.
type Store interface {
	// Commit applies b atomically and returns once it is durable (see
	// Durability). Enqueue's deliveries have their Seq set on success. ctx
	// is checked before applying; an applied batch is waited for. On error
	// nothing in b may be acknowledged.
	Commit(ctx context.Context, b *Batch) error
	// CommitAsync applies b and calls done once it is durable, or with the
	// error. Callbacks run one at a time in commit order, never inside
	// CommitAsync (except on a closed store: at once, with ErrClosed); they
	// must not block on the store.
	CommitAsync(b *Batch, done func(error))

	// Sessions calls fn for every session record, in client id order.
	Sessions(fn func(*SessionRecord) error) error
	// Session returns the record of clientID, or nil (and no error) when
	// there is none: a node of a cluster sharing the store loads one
	// session when its client arrives or its node dies, not all of them.
	Session(clientID string) (*SessionRecord, error)
	// Retained calls fn for every retained message, in topic order.
	Retained(fn func(*MessageRecord) error) error
	// Scan returns up to limit queued deliveries of clientID with Seq >=
	// from, in sequence order.
	Scan(clientID string, from uint64, limit int) ([]Queued, error)
	// QueueLen is the number of deliveries queued for clientID.
	QueueLen(clientID string) (int, error)
	// Inflight returns clientID's outbound in-flight ids in send order
	// (by Seq, then packet id).
	Inflight(clientID string) ([]InflightRecord, error)
	// QoS2In returns clientID's inbound QoS 2 packet ids awaiting PUBREL,
	// ascending.
	QoS2In(clientID string) ([]uint16, error)

	// Close waits for pending commits, makes everything durable and
	// releases the store.
	Close() error
}

// Counter is implemented by stores that can count their stored message
// bodies (to check that shared messages are stored once and freed).
type Counter interface {
	MessageCount() (int, error) // distinct message bodies held for queues
}

// SortInflight puts in-flight records in send order: by Seq, then packet id.
func SortInflight(rs []InflightRecord) {
	slices.SortFunc(rs, func(a, b InflightRecord) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.PacketID, b.PacketID))
	})
}
