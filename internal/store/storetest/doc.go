// Package storetest checks a store.Store against the in-memory model
// (memstore): seeded random sequences of batches, with the store closed and
// reopened between them as a restart would, and the full state of both
// compared after every step.
package storetest
