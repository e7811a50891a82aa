package pebblestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

func mustOpen(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCommit(t testing.TB, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// fill writes a little of everything and returns the state written.
func fill(t *testing.T, s *Store) {
	t.Helper()
	var b store.Batch
	b.PutSession(&store.SessionRecord{ClientID: "sub", Expiry: 3600, OfflineSince: time.Unix(1_700_000_000, 0),
		Will: &store.MessageRecord{Topic: "will", Payload: []byte("gone")}, WillDelay: 5,
		Subs: []store.SubscriptionRecord{{Filter: "a/#", QoS: 2, SubscriptionID: 3}}})
	b.PutRetained(&store.MessageRecord{Topic: "a/r", Payload: []byte("kept"), Retain: true, Props: []byte{1, 1}})
	for i := range 10 {
		b.Enqueue(&store.MessageRecord{Topic: "a/q", Payload: fmt.Appendf(nil, "m%d", i), QoS: 1},
			[]store.Delivery{{ClientID: "sub", QoS: 1}, {ClientID: "other", QoS: 1}})
	}
	b.SetInflight("sub", store.InflightRecord{PacketID: 1, Seq: 1, State: store.AwaitAck})
	b.AddQoS2In("sub", 9)
	mustCommit(t, s, &b)
}
