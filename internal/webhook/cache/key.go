package cache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// Key identifies one cached decision: SHA-256 over a per-process random
// salt and the length-prefixed fields of the request. The salt means a key
// seen in a heap dump or a log cannot be checked against guessed passwords
// offline, and the length prefixes mean ("ab","c") and ("a","bc") differ.
type Key [sha256.Size]byte

// Keyer builds Keys and Tags under one process-wide random salt.
type Keyer struct {
	salt [16]byte  // 128 bits defeat precomputation; more would only cost hash blocks
	pool sync.Pool // *Builder
}

// NewKeyer returns a Keyer with a fresh random salt.
func NewKeyer() *Keyer {
	k := &Keyer{}
	rand.Read(k.salt[:]) // never fails (crypto/rand panics rather than return short)
	k.pool.New = func() any { return &Builder{buf: make([]byte, 0, 256)} }
	return k
}

// Builder accumulates the fields of one key. It comes from a pool, so
// building a key allocates nothing once the pool is warm: sha256.New would
// allocate a digest per call, Sum256 over a pooled buffer does not.
type Builder struct {
	k   *Keyer
	buf []byte
}

// Begin starts a key in the given domain (one per endpoint), so an
// authenticate key and a topic_filtering key never collide even when their
// fields happen to encode alike. Finish the key with Sum.
func (k *Keyer) Begin(domain byte) *Builder {
	b := k.pool.Get().(*Builder)
	b.k = k
	b.buf = append(b.buf[:0], k.salt[:]...)
	return b.Byte(domain)
}

// String adds a length-prefixed string field.
func (b *Builder) String(s string) *Builder {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(s)))
	b.buf = append(b.buf, s...)
	return b
}

// Bytes adds a length-prefixed byte field; nil and empty are the same.
func (b *Builder) Bytes(p []byte) *Builder {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(p)))
	b.buf = append(b.buf, p...)
	return b
}

// Uvarint adds a number (a count of the fields that follow, say).
func (b *Builder) Uvarint(v uint64) *Builder {
	b.buf = binary.AppendUvarint(b.buf, v)
	return b
}

// Byte adds a one-byte field (fixed width, so it needs no prefix).
func (b *Builder) Byte(c byte) *Builder {
	b.buf = append(b.buf, c)
	return b
}

// Sum returns the key and hands the builder back to the pool; b must not
// be used afterwards. The plaintext fields are wiped from the pooled buffer
// first so a password does not linger in memory until the next key.
func (b *Builder) Sum() Key {
	sum := sha256.Sum256(b.buf)
	clear(b.buf)
	b.buf = b.buf[:0]
	if cap(b.buf) <= 4096 { // don't pool a buffer a huge field grew
		b.k.pool.Put(b)
	}
	return Key(sum)
}

// Tag is a salted 64-bit fingerprint of a client id or user name, recorded
// in each entry so a purge "for this client" can find its entries without
// the cache holding either name in clear. Two names sharing a tag only make
// a purge remove a little more than asked, which is harmless.
type Tag uint64

// Tag returns the tag of s within the given domain (a client id domain, a
// user name domain), so a client id spelled like some user name does not
// share its tag. Tag domains must differ from key domains.
func (k *Keyer) Tag(domain byte, s string) Tag {
	sum := k.Begin(domain).String(s).Sum()
	return Tag(binary.LittleEndian.Uint64(sum[:8]))
}
