package mqtt

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// failingStore fails every write while failing is set, as a full disk
// would, keeping the order of callbacks.
type failingStore struct {
	store.Store
	failing atomic.Bool
}

var errDiskFull = errors.New("test: no space left on device")

func (f *failingStore) Commit(ctx context.Context, b *store.Batch) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.Store.Commit(ctx, b)
}

func (f *failingStore) CommitAsync(b *store.Batch, done func(error)) {
	if f.failing.Load() {
		// An empty batch through the real store keeps the callback on its
		// notifier, in commit order.
		f.Store.CommitAsync(&store.Batch{}, func(error) { done(errDiskFull) })
		return
	}
	f.Store.CommitAsync(b, done)
}

// A QoS 1/2 publish that must be stored and cannot be is refused, not
// acknowledged: MQTT 5 hears 0x97 in PUBACK or PUBREC, a 3.1.1 publisher is
// disconnected. It is counted, nothing of it reaches the persistent
// session, and the rest keeps serving: publishes without persistent
// subscribers are acknowledged, and once the store works again so are the
// others.
func TestStoreWriteErrorRefusesPublish(t *testing.T) {
	var fs *failingStore
	pb := &persistBroker{t: t, dir: t.TempDir()}
	pb.wrap = func(s store.Store) store.Store { fs = &failingStore{Store: s}; return fs }
	pb.start()

	sub := dialRaw(t, pb.addr)
	sub.mustConnect("wf-sub", false)
	sub.subscribe(1, "wf/#", 2)
	sub.disconnect()
	live := dialRaw(t, pb.addr)
	live.mustConnect("wf-live", true)
	live.subscribe(1, "clean/#", 1)

	v5, _ := mustConnectV5(t, pb.addr, "wf-pub5", true, 0)
	v3 := dialRaw(t, pb.addr)
	v3.mustConnect("wf-pub3", true)
	v5.send(&packets.Publish{Topic: "wf/ok", Payload: []byte("before"), QoS: 1, PacketID: 1})
	if ack := v5.expect(packets.PUBACK, 1).(*packets.Puback); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v before the failure", ack.ReasonCode)
	}

	fs.failing.Store(true)
	v5.send(&packets.Publish{Topic: "wf/lost", Payload: []byte("q1"), QoS: 1, PacketID: 2})
	if ack := v5.expect(packets.PUBACK, 2).(*packets.Puback); ack.ReasonCode != packets.QuotaExceeded {
		t.Fatalf("PUBACK %v while the store fails, want quota exceeded (0x97)", ack.ReasonCode)
	}
	v5.send(&packets.Publish{Topic: "wf/lost", Payload: []byte("q2"), QoS: 2, PacketID: 3})
	if rec := v5.expect(packets.PUBREC, 3).(*packets.Pubrec); rec.ReasonCode != packets.QuotaExceeded {
		t.Fatalf("PUBREC %v while the store fails, want quota exceeded (0x97)", rec.ReasonCode)
	}
	// Publishes that need no store are served as ever.
	v5.send(&packets.Publish{Topic: "clean/x", Payload: []byte("live"), QoS: 1, PacketID: 4})
	if ack := v5.expect(packets.PUBACK, 4).(*packets.Puback); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v for a publish with only clean subscribers", ack.ReasonCode)
	}
	if got := live.nextPayload(2 * time.Second); got != "live" {
		t.Fatalf("clean subscriber got %q", got)
	}
	v3.send(&packets.Publish{Topic: "wf/lost", Payload: []byte("v3"), QoS: 1, PacketID: 5})
	v3.expectClosed(2 * time.Second)
	if st := pb.Stats(); st.StoreRefused != 3 || st.StoreErrors < 3 {
		t.Fatalf("store refused %d errors %d, want 3 and at least 3", st.StoreRefused, st.StoreErrors)
	}

	fs.failing.Store(false)
	// The refused QoS 2 id was released: the same id is a new message.
	v5.send(&packets.Publish{Topic: "wf/ok", Payload: []byte("after"), QoS: 2, PacketID: 3})
	if rec := v5.expect(packets.PUBREC, 3).(*packets.Pubrec); rec.ReasonCode != packets.Success {
		t.Fatalf("PUBREC %v once the store works again", rec.ReasonCode)
	}
	v5.send(&packets.Pubrel{PacketID: 3})
	v5.expect(packets.PUBCOMP, 3)

	sub2 := dialRaw(t, pb.addr)
	sub2.mustConnect("wf-sub", false)
	got := sub2.receiveAll(2, 2*time.Second)
	if string(got[0].Payload) != "before" || string(got[1].Payload) != "after" {
		t.Fatalf("persistent session got %q and %q, want only the stored messages", got[0].Payload, got[1].Payload)
	}
	sub2.expectNothing(200 * time.Millisecond)
}

// gatedStore holds every commit callback until the gate opens, as a slow
// fsync would (callbacks still run in commit order).
type gatedStore struct {
	store.Store
	gate chan struct{}
}

func (g *gatedStore) CommitAsync(b *store.Batch, done func(error)) {
	g.Store.CommitAsync(b, func(err error) {
		<-g.gate
		done(err)
	})
}

// Acknowledgements leave in the order the publishes arrived: a PUBACK that
// needs no store write waits behind one whose commit is still running.
func TestStoreAcksKeepArrivalOrder(t *testing.T) {
	var gs *gatedStore
	pb := &persistBroker{t: t, dir: t.TempDir()}
	pb.wrap = func(s store.Store) store.Store { gs = &gatedStore{Store: s, gate: make(chan struct{})}; return gs }
	pb.start()
	defer func() {
		select {
		case <-gs.gate:
		default:
			close(gs.gate) // let the store close
		}
	}()
	// The gate holds the session write too; nothing waits for that.
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("ord-sub", false)
	sub.subscribe(1, "ord/stored", 1)

	pub := dialRaw(t, pb.addr)
	pub.mustConnect("ord-pub", true)
	pub.send(&packets.Publish{Topic: "ord/stored", Payload: []byte("1"), QoS: 1, PacketID: 1})
	pub.send(&packets.Publish{Topic: "ord/nobody", Payload: []byte("2"), QoS: 1, PacketID: 2})
	pub.send(&packets.Publish{Topic: "ord/nobody", Payload: []byte("3"), QoS: 2, PacketID: 3})
	pub.expectNothing(200 * time.Millisecond) // the first is not durable yet, so none may leave
	close(gs.gate)
	pub.expect(packets.PUBACK, 1)
	pub.expect(packets.PUBACK, 2)
	pub.expect(packets.PUBREC, 3)
	if got := sub.nextPayload(2 * time.Second); got != "1" {
		t.Fatalf("subscriber got %q", got)
	}
}

// fullDisk is a file system that fails every write, sync and file
// creation while full is set, as a full disk does.
type fullDisk struct{ full atomic.Bool }

func (d *fullDisk) fs() vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op, _ string) error {
		if !d.full.Load() {
			return nil
		}
		switch op {
		case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpReuseForRewrite:
			return syscall.ENOSPC
		}
		return nil
	}))
}

// A real store on a disk that fills up and then frees space: while full,
// QoS 1 publishes for persistent sessions are refused (MQTT 5 hears 0x97,
// a 3.1.1 publisher is disconnected) and QoS 0 and clean sessions keep
// flowing; once space returns the store reopens itself, the same clients'
// QoS 1 publishes are acknowledged and delivered to the persistent
// subscribers, and after a restart the stored queue holds exactly what
// was acknowledged.
func TestStoreRecoversWhenSpaceReturns(t *testing.T) {
	var disk fullDisk
	pb := &persistBroker{t: t, dir: t.TempDir()}
	pb.popts = func(o *pebblestore.Options) { o.FS, o.RetryInterval = disk.fs(), 10*time.Millisecond }
	pb.start()
	ps := pb.st.(*pebblestore.Store)

	off, _ := mustConnectV5(t, pb.addr, "rf-off", false, 3600) // reconnects after the restart
	off.subscribe(1, "rf/#", 1)
	off.disconnect()
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("rf-sub", false)
	sub.subscribe(1, "rf/#", 1)
	live := dialRaw(t, pb.addr)
	live.mustConnect("rf-live", true)
	live.subscribe(1, "clean/#", 1)
	v5, _ := mustConnectV5(t, pb.addr, "rf-pub5", true, 0)
	v3 := dialRaw(t, pb.addr)
	v3.mustConnect("rf-pub3", true)

	if ack := v5.publish1(1, "rf/a", "before", false); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v before the disk filled", ack.ReasonCode)
	}
	if got := sub.nextPayload(5 * time.Second); got != "before" {
		t.Fatalf("persistent subscriber got %q", got)
	}

	disk.full.Store(true)
	if ack := v5.publish1(2, "rf/a", "lost5", false); ack.ReasonCode != packets.QuotaExceeded {
		t.Fatalf("PUBACK %v on a full disk, want quota exceeded (0x97)", ack.ReasonCode)
	}
	if ps.Healthy() {
		t.Fatal("store healthy after a write failed")
	}
	// What needs no store flows: QoS 0, and QoS 1 to clean sessions only.
	v5.send(&packets.Publish{Topic: "clean/x", Payload: []byte("q0")})
	if got := live.nextPayload(5 * time.Second); got != "q0" {
		t.Fatalf("clean subscriber got %q", got)
	}
	if ack := v5.publish1(3, "clean/x", "q1", false); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v for a publish with only clean subscribers", ack.ReasonCode)
	}
	if got := live.nextPayload(5 * time.Second); got != "q1" {
		t.Fatalf("clean subscriber got %q", got)
	}
	v3.send(&packets.Publish{Topic: "rf/a", Payload: []byte("lost3"), QoS: 1, PacketID: 1})
	v3.expectClosed(5 * time.Second)
	if st := pb.Stats(); st.StoreRefused < 2 {
		t.Fatalf("store refused %d publishes, want at least 2", st.StoreRefused)
	}
	sub.expectNothing(100 * time.Millisecond) // nothing refused reached it

	disk.full.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	for !ps.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("the store did not recover once space returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ack := v5.publish1(4, "rf/a", "after5", false); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v once space returned", ack.ReasonCode)
	}
	v3 = dialRaw(t, pb.addr)
	v3.mustConnect("rf-pub3", true)
	if ack := v3.publish1(2, "rf/a", "after3", false); ack.ReasonCode != packets.Success {
		t.Fatalf("3.1.1 PUBACK %v once space returned", ack.ReasonCode)
	}
	for _, want := range []string{"after5", "after3"} {
		if got := sub.nextPayload(5 * time.Second); got != want {
			t.Fatalf("persistent subscriber got %q, want %q", got, want)
		}
	}

	pb.restart()
	off, _ = mustConnectV5(t, pb.addr, "rf-off", false, 3600)
	got := off.receiveAll(3, 5*time.Second)
	for i, want := range []string{"before", "after5", "after3"} {
		if string(got[i].Payload) != want {
			t.Fatalf("after the restart the offline session got %q as message %d, want %q", got[i].Payload, i+1, want)
		}
	}
	off.expectNothing(200 * time.Millisecond)
}

// failOnceStore fails the first commit that stores a message once armed,
// and lets every other through.
type failOnceStore struct {
	store.Store
	armed  atomic.Bool
	failed atomic.Int32 // messages in the commit it failed
}

func (f *failOnceStore) CommitAsync(b *store.Batch, done func(error)) {
	n := 0
	for _, op := range b.Ops {
		if op.Kind == store.OpEnqueue {
			n++
		}
	}
	if n > 0 && f.armed.CompareAndSwap(true, false) {
		f.failed.Store(int32(n))
		f.Store.CommitAsync(&store.Batch{}, func(error) { done(errDiskFull) })
		return
	}
	f.Store.CommitAsync(b, done)
}

// The QoS 1 PUBLISHes a client pipelines in one read are stored by one
// commit: when that commit fails, every one of them is refused (0x97) and
// none is acknowledged or delivered, however many of them there were; the
// next ones, in a later commit, are acknowledged and delivered.
func TestStoreReadBatchRefusedTogether(t *testing.T) {
	var fs *failOnceStore
	pb := &persistBroker{t: t, dir: t.TempDir()}
	pb.wrap = func(s store.Store) store.Store { fs = &failOnceStore{Store: s}; return fs }
	pb.start()

	sub := dialRaw(t, pb.addr)
	sub.mustConnect("rb-sub", false)
	sub.subscribe(1, "rb/#", 1)
	pub, _ := mustConnectV5(t, pb.addr, "rb-pub", true, 0)
	if ack := pub.publish1(1, "rb/x", "before", false); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v before the failure", ack.ReasonCode)
	}
	if got := sub.nextPayload(5 * time.Second); got != "before" {
		t.Fatalf("subscriber got %q", got)
	}

	// One write, well inside the reader's smallest buffer: one read.
	const n = 8
	var burst []byte
	for i := range n {
		p := &packets.Publish{Topic: "rb/x", Payload: []byte{'a' + byte(i)}, QoS: 1, PacketID: uint16(10 + i)}
		var err error
		if burst, err = p.Append(burst, packets.V5); err != nil {
			t.Fatal(err)
		}
	}
	fs.armed.Store(true)
	pub.write(burst)
	for i := range n {
		if ack := pub.expect(packets.PUBACK, uint16(10+i)).(*packets.Puback); ack.ReasonCode != packets.QuotaExceeded {
			t.Fatalf("PUBACK %d: %v, want quota exceeded (0x97) for every publish of the failed commit", 10+i, ack.ReasonCode)
		}
	}
	if got := fs.failed.Load(); got != n {
		t.Fatalf("the failed commit held %d messages, want all %d of the read", got, n)
	}
	if st := pb.Stats(); st.StoreRefused != n {
		t.Fatalf("store refused %d publishes, want %d", st.StoreRefused, n)
	}
	sub.expectNothing(100 * time.Millisecond) // nothing refused reached it

	if ack := pub.publish1(20, "rb/x", "after", false); ack.ReasonCode != packets.Success {
		t.Fatalf("PUBACK %v after the failed commit", ack.ReasonCode)
	}
	if got := sub.nextPayload(5 * time.Second); got != "after" {
		t.Fatalf("subscriber got %q, want only what was acknowledged", got)
	}
}
