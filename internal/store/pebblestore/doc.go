// Package pebblestore is the on-disk store.Store, on Pebble (an LSM
// key-value store with a write-ahead log and group commit).
//
// # Key layout
//
// One keyspace; the first byte says what a key holds. Numbers in keys are
// big-endian so that ordered iteration follows them; client ids inside
// composite keys are prefixed by their 16-bit length so one client's keys
// never run into another's.
//
//	0x00                          format version of the store (1 byte, now 3)
//	's' client-id                 session record (store.AppendSession)
//	'r' topic                     retained message (store.AppendMessage)
//	'm' msg-id(8)                 message queued for several sessions, stored once (store.AppendMessage)
//	'n' client-id                 queue's last sequence number, written at Close
//	'q' len(2) client-id seq(8)   queue entry: msg-id and delivery options, or (msg-id 0) the message itself
//	'i' len(2) client-id pid(2)   outbound in-flight packet id: seq and state
//	'p' len(2) client-id pid(2)   inbound QoS 2 packet id awaiting PUBREL (empty value)
//
// Every value starts with a version byte; decoders refuse anything else
// with an error wrapping store.ErrCorrupt. A store in an older format is
// refused with ErrOldFormat.
//
// What a delivery costs in key writes is what a persistent QoS 1 flow
// costs in Pebble (memtable inserts, flushes, compactions), so the layout
// keeps it small. A message for one session (the common case) is held by
// its queue entry: one key written when it is queued. A message for N
// sessions is one message key and N entries. Acknowledgements are not
// deleted one key each: the entries a commit acknowledges are deleted when
// its operations are done, a run of neighbours in one queue (separated
// only by sequence numbers known to hold nothing) with one range deletion,
// and the messages they freed likewise by runs of consecutive ids. A
// subscriber acknowledging in order therefore costs about one range
// deletion per commit. Range deletions, unlike single deletes, stay
// correct when a key is written again after its deletion (sequence numbers
// start again after a session is deleted, message ids after a restart).
// But Pebble fragments a memtable's range deletions again for the first
// read after each new one, so for a second after a queue is read back (a
// page of a backlog, an entry older than the index) commits delete point
// by point (writer.go, noteRead).
//
// Queue heads (last sequence number, entry count) and the number of entries
// referring to each message are not written by commits: Open rebuilds them
// in memory from the queue entries, one pass over them that decodes only
// their message ids, so that a stored delivery writes its entry and nothing
// else; a message is deleted with the entry that held its last reference.
// Close writes each queue's last sequence number, which the entries may no
// longer show (index.go).
//
// # Commits and durability
//
// Commits are serialised by one mutex while they update the heads and
// counts in memory and apply to the memtable, so sequence
// numbers are visible in the order they were handed out; the fsync is
// awaited outside the mutex, so concurrent commits share one fsync (Pebble's
// group commit). Sync waits for that fsync; Interval fsyncs the log every
// SyncInterval from a background goroutine; None never asks, so the log
// reaches the disk as its buffer fills and a crash, even of the process
// alone, loses recent commits. Close fsyncs whatever is outstanding in every
// mode.
//
// # Faults
//
// The directory is locked (a second process, or a second Open in this one,
// is refused with an error naming the directory). A store that Pebble
// reports corrupt, whose format marker is missing or unknown, or holding a
// session or retained record that does not decode is refused with an error
// naming the directory and the fix; with OnCorrupt: Quarantine it is moved
// aside to DIR.corrupt-TIMESTAMP and an empty store started, logged at
// error level. Compaction is Pebble's, in the background.
//
// A write error (a full disk, an I/O error) fails the store: every commit
// from then on is refused without reaching Pebble, so nothing is
// acknowledged that is not durable, and reads go on from a read-only
// instance. Every RetryInterval a probe checks whether the disk takes
// writes again and, once it does, reopens the store on the same directory
// (the log holds every acknowledged commit) and accepts writes again. A
// write error in the middle of Pebble's switch to a new log stops Pebble
// itself; the store is then wedged until the process restarts.
package pebblestore
