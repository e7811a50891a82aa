package mqtt

// persistBroker: a broker on a pebblestore in t.TempDir(), restarted in
// process (close the broker, close the store, reopen both) as a deploy
// would restart mqttd.

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

type persistBroker struct {
	*testBroker
	t     *testing.T
	dir   string
	st    store.Store
	wrap  func(store.Store) store.Store // optional: a store wrapper for fault tests
	popts func(*pebblestore.Options)    // optional: the store's options (a faulty file system)
	mod   func(*Options)
	progs []RecoveryProgress
}

// startPersistent starts a broker on a fresh pebblestore (durability sync).
func startPersistent(t *testing.T, mod func(*Options)) *persistBroker {
	t.Helper()
	pb := &persistBroker{t: t, dir: t.TempDir(), mod: mod}
	pb.start()
	return pb
}

func (pb *persistBroker) start() {
	t := pb.t
	t.Helper()
	o := pebblestore.Options{Durability: store.Sync}
	if pb.popts != nil {
		pb.popts(&o)
	}
	ps, err := pebblestore.Open(pb.dir, o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	pb.st = ps
	if pb.wrap != nil {
		pb.st = pb.wrap(ps)
	}
	st := pb.st
	t.Cleanup(func() { st.Close() }) // runs after the broker's Close: cleanups are last-in first-out
	pb.progs = nil
	pb.testBroker = startBroker(t, func(o *Options) {
		o.Store = st
		o.OnRecovery = func(p RecoveryProgress) { pb.progs = append(pb.progs, p) }
		if pb.mod != nil {
			pb.mod(o)
		}
	})
}

// restart closes the broker and its store and starts both again on the
// same directory.
func (pb *persistBroker) restart() {
	t := pb.t
	t.Helper()
	if err := closeBroker(t, pb.Broker, 5*time.Second); err != nil {
		t.Fatalf("close broker: %v", err)
	}
	if err := pb.st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	pb.start()
	if n := len(pb.progs); n == 0 || !pb.progs[n-1].Done {
		t.Fatalf("recovery did not report completion: %+v", pb.progs)
	}
}

// receiveAll reads n PUBLISH packets, acknowledging each as a subscriber
// does (PUBACK; PUBREC, then PUBCOMP for each PUBREL), and returns them in
// arrival order. It then waits quietly for the remaining PUBRELs.
func (c *rawClient) receiveAll(n int, timeout time.Duration) []*packets.Publish {
	c.t.Helper()
	var got []*packets.Publish
	open := map[uint16]bool{} // QoS 2 ids awaiting PUBREL
	for len(got) < n || len(open) > 0 {
		switch p := c.read(timeout).(type) {
		case *packets.Publish:
			if len(got) == n {
				c.t.Fatalf("PUBLISH %d (%s %q) beyond the %d expected", len(got)+1, p.Topic, p.Payload, n)
			}
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.send(&packets.Puback{PacketID: p.PacketID})
			case 2:
				open[p.PacketID] = true
				c.send(&packets.Pubrec{PacketID: p.PacketID})
			}
		case *packets.Pubrel:
			delete(open, p.PacketID)
			c.send(&packets.Pubcomp{PacketID: p.PacketID})
		default:
			c.t.Fatalf("unexpected %v", p.Type())
		}
	}
	return got
}

// publish2 publishes a QoS 2 message and completes its flow as a publisher.
func (c *rawClient) publish2(pid uint16, topic, payload string) {
	c.t.Helper()
	c.send(&packets.Publish{Topic: topic, Payload: []byte(payload), QoS: 2, PacketID: pid})
	c.expect(packets.PUBREC, pid)
	c.send(&packets.Pubrel{PacketID: pid})
	c.expect(packets.PUBCOMP, pid)
}
