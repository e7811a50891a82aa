// Package jsstore is the store.Store on NATS JetStream: one stream shared
// by every node of a cluster, so that a persistent session can follow its
// client to another node and outlive the node that held it.
//
// # Layout
//
// One file-backed stream, <prefix>_store, holds subjects <prefix>.store.>
// and keeps one message per subject (MaxMsgsPerSubject 1), like a
// key-value bucket: a write replaces a record, and an empty message with a
// short TTL (a tombstone) deletes it. T is the client id as one subject
// token (letters, digits and '-' kept, other bytes '_' and two hex digits,
// the empty id '_'; a token over 128 bytes is '~' and the SHA-256 of the
// id), G a generation, N a queue sequence number, P a packet id:
//
//	s.T        the session record
//	h.T        the session's head: generation, last seq handed out, live entries
//	q.T.G.N    a queue entry: the delivery and the id of its message body
//	i.T.G.P    an outbound packet id in flight
//	2.T.G.P    an inbound QoS 2 packet id awaiting PUBREL
//	m.ID       a message body, stored once for all the queues it is in
//	c.ID       the number of queue entries referencing body ID
//	r.K        the retained message of a topic (K its token, as T)
//
// # Commits
//
// A store.Batch becomes one JetStream atomic batch (AllowAtomicPublish):
// the server stores all its messages or none, and answers once they are
// stored on the stream's replicas, which is when Commit returns. Queued
// commits are grouped into one atomic batch while they fit the batch
// limit, and applied in order by one goroutine, so CommitAsync callbacks
// follow commit order. A Batch needing more messages than the limit (an
// Enqueue to hundreds of sessions) is applied in several atomic parts;
// if one fails the earlier ones stay, and the error says so.
//
// Values derived from earlier state (a head's counters, an entry being
// acknowledged, a reference count) are written with the expected last
// sequence of their subject (Nats-Expected-Last-Subject-Sequence): if
// another process wrote one meanwhile, the whole batch is refused, and
// the store reads the subjects again and rebuilds it. The store remembers
// the values it wrote to skip reading them back; nothing it remembers is
// trusted without that check. Sequence numbers therefore continue where
// the last writer of a session stopped, whichever process that was, and
// grow by one per delivery as in the other stores.
//
// DeleteSession moves the head to a new generation in the batch: the
// old queue, in-flight and QoS 2 subjects stop counting at once. A queue
// of up to 64 entries is released in the same batch (entries removed,
// reference counts dropped, bodies deleted with their last reference);
// a longer one after the batch, before Commit returns, in atomic batches
// that each remove the entries they release, so that the work can be
// redone. The old generation's subjects are then purged. A process dying
// in between leaves that garbage behind: invisible to every read, but
// taking space (and, for a long queue, keeping its bodies).
//
// Before building a batch, the store reads what it needs and does not
// know (the heads of the sessions the batch touches, the entries it
// acknowledges, their reference counts) concurrently, a round of reads
// per kind, not one round trip per operation.
//
// # Reads
//
// Reads go to the stream, never to memory. Scan reads the head for the
// current generation, then asks for the entry subjects it can name (from
// the entry asked for up to the head's last sequence number) in one
// multi-subject request per window of the page, and then the page's
// bodies in one more: the server answers from its subject index, a few
// round trips a page however the queue's records lie in the stream. A
// window with no live entry is a gap (entries acknowledged out of order);
// the rest of the page is then read in stream order (which is sequence
// order) from a known lower bound (the entry asked for, or where the last
// Scan stopped), one bucket of 1024 sequence numbers at a time. A long
// queue is read page by page, never whole.
//
// On a stream of one replica the reads are batched direct gets
// (AllowDirect). With more, any replica may answer a direct get and a
// follower may be a moment behind, without saying so; a node taking a
// session over could then miss its last writes. So a replicated store
// reads through the stream leader (the message get API), one message per
// request, the requests of a multi-subject read in parallel: slower, but
// it sees every commit acknowledged before.
//
// # Cost
//
// What a commit costs is mostly the server's: on one replica, an atomic
// batch is staged in a file store of its own which the server fsyncs
// before applying it, whatever the stream's sync settings, so a commit
// takes at least one fsync (plus a few tens of microseconds per message);
// on three replicas it is staged in memory and goes through the stream's
// Raft log. The server applies a stream's atomic batches one after
// another: batches sent without waiting for the previous acknowledgement
// are no faster (measured), which is why the store groups queued commits
// into one batch rather than pipelining them.
package jsstore
