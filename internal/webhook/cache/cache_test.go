package cache

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func authKey(k *Keyer, client, user string, password []byte) Key {
	return k.Begin(1).String(client).String(user).Bytes(password).
		String("192.0.2.1").String("default").Bytes(nil).Sum()
}

func TestKeyCoversEveryField(t *testing.T) {
	k := NewKeyer()
	base := authKey(k, "c1", "alice", []byte("pw"))
	if authKey(k, "c1", "alice", []byte("pw")) != base {
		t.Fatal("same fields must give the same key")
	}
	for name, other := range map[string]Key{
		"client":   authKey(k, "c2", "alice", []byte("pw")),
		"user":     authKey(k, "c1", "bob", []byte("pw")),
		"password": authKey(k, "c1", "alice", []byte("pw2")),
		"domain":   k.Begin(2).String("c1").String("alice").Bytes([]byte("pw")).String("192.0.2.1").String("default").Bytes(nil).Sum(),
		"salt":     authKey(NewKeyer(), "c1", "alice", []byte("pw")),
	} {
		if other == base {
			t.Errorf("changing the %s did not change the key", name)
		}
	}
}

func TestKeyLengthPrefixesPreventConcatenationCollisions(t *testing.T) {
	k := NewKeyer()
	a := k.Begin(9).String("ab").String("c").Sum()
	b := k.Begin(9).String("a").String("bc").Sum()
	if a == b {
		t.Fatal(`("ab","c") and ("a","bc") share a key`)
	}
	if k.Begin(9).Byte(1).Bytes(nil).Sum() == k.Begin(9).Bytes([]byte{1}).Sum() {
		t.Fatal("a byte field followed by an empty field collides with a one-byte field")
	}
}

func TestKeyNeverHoldsThePassword(t *testing.T) {
	k := NewKeyer()
	secret := []byte("hunter2-very-secret")
	b := k.Begin(1).String("c1").Bytes(secret)
	backing := b.buf[:cap(b.buf)]
	if !bytes.Contains(backing, secret) {
		t.Fatal("test is broken: the builder should hold the password before Sum")
	}
	key := b.Sum()
	if bytes.Contains(key[:], secret) || bytes.Contains(key[:], secret[:4]) {
		t.Fatal("key bytes contain the password")
	}
	if bytes.Contains(backing, secret) {
		t.Fatal("the pooled buffer still holds the password after Sum")
	}
}

func TestTag(t *testing.T) {
	k := NewKeyer()
	if k.Tag(3, "x") != k.Tag(3, "x") {
		t.Fatal("tag not stable")
	}
	if k.Tag(3, "x") == k.Tag(4, "x") {
		t.Fatal("tag domains collide")
	}
	if k.Tag(3, "x") == k.Tag(3, "y") {
		t.Fatal("different names share a tag")
	}
}

func TestCacheKeepsExpiredEntriesUntilEvicted(t *testing.T) {
	c, err := New[string](2)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKeyer()
	now := time.Unix(1000, 0)
	k1, k2, k3 := k.Begin(9).String("1").Sum(), k.Begin(9).String("2").Sum(), k.Begin(9).String("3").Sum()
	c.Add(k1, &Entry[string]{Value: "one", Expires: now.Add(time.Second).UnixNano()})
	e, ok := c.Get(k1)
	if !ok || !e.Fresh(now) || e.Value != "one" {
		t.Fatalf("fresh entry: %+v %v", e, ok)
	}
	later := now.Add(2 * time.Second)
	if e, ok = c.Get(k1); !ok || e.Fresh(later) {
		t.Fatalf("expired entry must be returned as not fresh: %+v %v", e, ok)
	}
	c.Add(k2, &Entry[string]{Value: "two"})
	c.Get(k1) // k1 most recently used: k2 goes first
	c.Add(k3, &Entry[string]{Value: "three"})
	if _, ok := c.Get(k2); ok {
		t.Fatal("least recently used entry survived")
	}
	if _, ok := c.Get(k1); !ok {
		t.Fatal("recently used expired entry was evicted before the LRU one")
	}
	if c.Evictions() != 1 || c.Len() != 2 {
		t.Fatalf("evictions %d len %d, want 1 and 2", c.Evictions(), c.Len())
	}
	c.Add(k3, &Entry[string]{Value: "three again"}) // replacing is not evicting
	if c.Evictions() != 1 {
		t.Fatalf("replacing an entry counted an eviction")
	}
}

func TestPurge(t *testing.T) {
	c, _ := New[int](100)
	k := NewKeyer()
	alice, bob := k.Tag(4, "alice"), k.Tag(4, "bob")
	c1, c2 := k.Tag(3, "c1"), k.Tag(3, "c2")
	for i := range 10 {
		e := &Entry[int]{Value: i, Client: c1, User: alice}
		if i%2 == 1 {
			e.Client, e.User = c2, bob
		}
		c.Add(k.Begin(9).String(fmt.Sprint(i)).Sum(), e)
	}
	if n := c.PurgeUser(bob); n != 5 || c.Len() != 5 {
		t.Fatalf("PurgeUser removed %d, left %d; want 5, 5", n, c.Len())
	}
	if n := c.PurgeClient(c2); n != 0 {
		t.Fatalf("PurgeClient of an already purged client removed %d", n)
	}
	if n := c.PurgeClient(c1); n != 5 || c.Len() != 0 {
		t.Fatalf("PurgeClient removed %d, left %d", n, c.Len())
	}
	c.Add(k.Begin(9).Sum(), &Entry[int]{})
	if n := c.Purge(); n != 1 || c.Len() != 0 {
		t.Fatalf("Purge removed %d, left %d", n, c.Len())
	}
	if c.Evictions() != 0 {
		t.Fatal("purges must not count as evictions")
	}
}

func TestShardedCacheKeepsTheBound(t *testing.T) {
	c, err := New[int](1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.shards) < 2 {
		t.Fatalf("a cache of 1000 has %d shard(s)", len(c.shards))
	}
	k := NewKeyer()
	for i := range 5000 {
		c.Add(k.Begin(9).String(fmt.Sprint(i)).Sum(), &Entry[int]{Value: i})
	}
	if n := c.Len(); n > 1000 || n < 990 {
		t.Fatalf("holds %d entries, bound 1000", n)
	}
	if got := c.Evictions(); got != uint64(5000-c.Len()) {
		t.Fatalf("evictions %d, want %d", got, 5000-c.Len())
	}
}
