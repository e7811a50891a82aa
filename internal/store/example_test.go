package store_test

import (
	"context"
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// The writes of one QoS 1 PUBLISH for two offline persistent subscribers
// go in one batch; the PUBACK leaves from the callback. When a subscriber
// comes back its queue is read a page at a time, and each PUBACK from it
// acknowledges one entry and clears its packet id together.
func Example() {
	var st store.Store = memstore.New()
	defer st.Close()

	var b store.Batch
	msg := &store.MessageRecord{Topic: "sensors/1", Payload: []byte("21.5"), QoS: 1}
	ds := []store.Delivery{{ClientID: "dashboard", QoS: 1}, {ClientID: "archiver", QoS: 1}}
	b.Enqueue(msg, ds)
	acked := make(chan error, 1)
	st.CommitAsync(&b, func(err error) { acked <- err }) // send PUBACK here, or refuse on err
	fmt.Println("durable:", <-acked == nil, "seqs:", ds[0].Seq, ds[1].Seq)

	page, _ := st.Scan("dashboard", 0, 100)
	for _, q := range page {
		var b store.Batch
		b.SetInflight("dashboard", store.InflightRecord{PacketID: 1, Seq: q.Seq, State: store.AwaitAck})
		st.Commit(context.Background(), &b)
		fmt.Printf("send %s %q as packet 1\n", q.Msg.Topic, q.Msg.Payload)

		b.Reset() // PUBACK 1 arrived
		b.ClearInflight("dashboard", 1)
		b.Ack("dashboard", q.Seq)
		st.Commit(context.Background(), &b)
	}
	n, _ := st.QueueLen("dashboard")
	m, _ := st.(store.Counter).MessageCount()
	fmt.Println("dashboard queue:", n, "bodies stored:", m)
	// Output:
	// durable: true seqs: 1 1
	// send sensors/1 "21.5" as packet 1
	// dashboard queue: 0 bodies stored: 1
}
