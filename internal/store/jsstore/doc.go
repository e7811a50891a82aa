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
// id), G a generation, B a bucket (N/256), N a queue sequence number:
//
//	layout     the layout's version (3), written when the stream is new
//	s.T        the session record
//	h.T        the session's head: generation, last seq handed out, the
//	           floor below which everything is acknowledged, the runs
//	           acknowledged above it, in-flight and QoS 2 packet ids
//	q.T.G.B.N  a chunk: the entries one commit queued for the session
//	           from seq N on (within bucket B), each with its message,
//	           or with a reference into a body record for a message
//	           queued for several sessions
//	p.T.G.B.N  the same, with every message in the chunk
//	m.I        a body record: the messages one publish queued for
//	           several sessions, each once (I a unique id)
//	r.K        the retained message of a topic (K its token, as T)
//
// A commit writes, per session it touches, the head (if it changed) and a
// chunk (if it queued anything), and one body record for the messages it
// queued for several sessions (more if they take over chunkBytes): for a
// broker's group of commits, two stream messages per subscriber however
// many messages it carries, plus one, and every message's body once.
// Acknowledging, sending and clearing packet ids change the head alone.
// A message for one session stays in its chunk. There is no reference
// count to keep across sessions (and across nodes): see Message bodies.
// The entries of one Enqueue carry the same id, so that the distinct
// messages held can be counted.
//
// A stream with records but no layout record was written by the first
// layout (one subject per entry, packet id and reference count), one
// whose layout record says 2 by the second (a message copied into the
// chunk of each session it was queued for): Open refuses both and says
// so.
//
// # Commits
//
// A store.Batch becomes one JetStream publish: a single message when the
// batch writes one (an acknowledgement of one session: a plain publish,
// atomic by itself), else an atomic batch (AllowAtomicPublish), which the
// server stores whole or not at all. Either way Commit returns when the
// server has stored it on the stream's replicas. Queued commits are
// grouped into one publish while they fit the atomic batch limit, and
// applied in order by one goroutine, so CommitAsync callbacks follow
// commit order. A Batch needing more messages than the limit (an Enqueue
// to hundreds of sessions) is applied in several atomic parts, cut
// between sessions (a session's head and chunks are in one part); if one
// fails the earlier ones stay, and the error says so.
//
// Heads are written with the expected last sequence of their subject
// (Nats-Expected-Last-Subject-Sequence): if another process wrote one
// meanwhile, the whole publish is refused, and the store reads the heads
// again and rebuilds it. The store remembers the heads it wrote to skip
// reading them back; nothing it remembers is trusted without that check.
// Sequence numbers therefore continue where the last writer of a session
// stopped, whichever process that was, and grow by one per delivery as
// in the other stores. Chunk subjects are new when written (the head
// hands their sequence numbers out once per generation).
//
// Writes go through a NATS connection of the store's own, opened with
// the caller's options but without a reconnect buffer: nats.go would
// otherwise keep what is published while it reconnects and send it once
// back, applying a commit already reported as failed.
//
// DeleteSession moves the head to a new generation in the batch: the old
// queue and packet ids stop counting at once. After the commit every
// chunk of the session older than the new head is purged (one request);
// a process dying in between leaves garbage no read sees, removed by the
// session's next purge.
//
// Chunks are in sequence order in the stream, per session and
// generation: Scan, and the purges below, rely on it.
//
// Acknowledged chunks are purged a bucket at a time: when a commit moves
// a floor into a new bucket, every chunk of the session older in the
// stream than the first chunk of the floor's bucket goes (chunks are in
// sequence order in the stream); when a commit empties a queue, every
// chunk older than its head goes. An entry left unacknowledged keeps the
// chunks after it until it goes; the head keeps the acknowledgements
// after it as runs, small while they are mostly in order.
//
// # Message bodies
//
// A body record is written in the same atomic batch as the q chunks that
// refer to it, after them, and an atomic batch takes consecutive stream
// sequences: a body record is referred to only by q chunks just before
// it. So when the oldest q chunk in the stream is at sequence F, no chunk
// refers to a body record below F, and one purge of m.> below F removes
// them all (with no q chunk, every body record stored before looking).
// It needs no count and no coordination: any process may run it at any
// time, again or late; each does every ReclaimInterval. A commit cut in parts writes, in each part,
// the body records that part refers to (a message queued for sessions in
// two parts is stored twice), so that the rule holds per batch. A crash
// between a commit and the purge leaves body records no read sees, for
// the next run.
//
// A q chunk left unacknowledged holds back every body record written
// after it, whether it refers to them or not. When the oldest q chunk is
// older than LaggardAge, its session's chunks from it on are written
// again as p chunks (then the next oldest's, as long as the run has time), every message in them (acknowledged entries without
// one), in one atomic batch with the session's head unchanged
// (compare-and-set: a concurrent write of the session makes it fail, to
// be tried on the next run) and a tombstone on each q subject. They take
// their old subjects (a p chunk on a q chunk's sequence number, a chunk
// too large once inline cut in two), after every other chunk of the
// session in the stream, so the order above holds; a Scan running across
// it meets entries again and skips them. A session rewritten so holds
// nothing back and is not rewritten again (p chunks are not in the
// reclaiming's view). A session with more chunks than one atomic batch
// holds (MaxBatch) is left, counted; the body records then wait until it
// is acknowledged or deleted.
//
// # Reads
//
// Reads go to the stream, never to memory, but for body records. Scan
// reads the head, then the chunks in stream order from the first chunk of
// the bucket of the entry asked for (or from where the last Scan of the
// session stopped), many per request (about as many as the page needs,
// from the entries per chunk the last page found), skipping what the
// head says is acknowledged, then the body records the page refers to:
// from a cache of those this store wrote or read lately, the others many
// per request. A page of a backlog costs a few requests however long the
// queue. QueueLen, Inflight and QoS2In read the head alone.
//
// A body record never changes once written (its id is new), and a read
// asks for one only because a chunk it read names it: serving it from
// memory gives the session what the stream would. (A body purged after
// its chunk was read, its entries acknowledged or rewritten inline
// meanwhile, makes a read from the stream start over; from the cache it
// returns the page as of the head it read, as a read a moment earlier
// would have.) The cache is bounded in bytes (Options.BodyCacheBytes), the
// least recently used records going first, counted; the store's own purge
// of body records drops them from it, and those another node purges wait
// there, asked for by no chunk, until pushed out.
//
// On a stream of one replica the reads are batched direct gets
// (AllowDirect). With more, any replica may answer a direct get and a
// follower may be a moment behind, without saying so; a node taking a
// session over could then miss its last writes. So a replicated store
// reads through the stream leader (the message get API), one message per
// request: slower, but it sees every commit acknowledged before.
//
// # Cost
//
// On one replica the server stages every atomic batch in a file store of
// its own which it fsyncs before applying it, whatever the stream's sync
// settings, and applies a stream's atomic batches one after another: a
// commit touching several sessions costs at least one fsync (tens of
// milliseconds on a loaded disk) and commits from a single writer waiting
// for each are bound by it. That fsync is of the staging store, which is
// dropped once the batch is applied to the stream; the stream's own
// writes, plain publishes included, are synced as the server's
// sync_interval says. A broker's commits are grouped while one is in flight,
// so the fixed cost is shared by all of them. On three replicas batches
// are staged in memory and go through the stream's Raft log.
package jsstore
