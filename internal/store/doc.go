// Package store is the broker's persistence contract: what a persistent
// session, a retained message and a queued delivery look like at rest, and
// the few operations the broker needs on them.
//
// What is stored: persistent sessions (client id, expiry, when they went
// offline, will and will delay, subscriptions, the identity they were
// created by), retained messages, and per session a queue of deliveries, the
// outbound in-flight packet ids and the inbound QoS 2 packet ids awaiting
// PUBREL. A message queued for N sessions is stored once; each queue holds a
// small reference to it, and the message is deleted when the last reference
// is acknowledged or its session deleted.
//
// Writes go through a Batch: the writes of one PUBLISH (its message, its N
// queue references, its inbound QoS 2 packet id) are committed together, or
// not at all. Commit returns, or CommitAsync calls back, once the batch is as
// durable as the store's Durability says; a QoS 1/2 PUBLISH is acknowledged
// only then. An error means the batch may not be durable (disk full, write
// error, store closed): the broker must refuse the PUBLISH rather than
// acknowledge it. CommitAsync callbacks run in commit order, one at a time,
// so acknowledgements leave in order per connection while many batches share
// one fsync (group commit).
//
// Reads are lazy: Sessions and Retained iterate, and a queue is read in
// pages with Scan, so recovery costs in proportion to sessions and a large
// backlog is never loaded whole.
//
// The implementations: memstore (in memory, the model and
// storage.type: memory) and pebblestore (on disk). The record encodings in
// this package are shared by every implementation that stores bytes; each
// starts with a version byte and each decoder rejects garbage with an error.
package store
