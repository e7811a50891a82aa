package mqtt

import "sync/atomic"

// counters are the broker-wide totals. Connections add to them in batches
// (once per read or write syscall, not per packet) to keep the shared cache
// lines cold.
type counters struct {
	clientsConnected atomic.Int64
	clientsMaximum   atomic.Int64
	clientsTotal     atomic.Int64 // connections ever accepted past CONNACK
	connsRefused     atomic.Int64 // over max-connections
	msgsIn           atomic.Int64 // PUBLISH packets received
	msgsOut          atomic.Int64 // PUBLISH packets sent
	bytesIn          atomic.Int64
	bytesOut         atomic.Int64
	pktsIn           atomic.Int64
	pktsOut          atomic.Int64
	droppedQoS0      atomic.Int64 // QoS 0 dropped: slow client's write buffer or queue full (offline sessions are promised no QoS 0)
	droppedTooLarge  atomic.Int64 // larger than the receiving client's Maximum Packet Size (MQTT 5)
	droppedQueued    atomic.Int64 // QoS 1/2 dropped: session queue full
	droppedExpired   atomic.Int64
	droppedSys       atomic.Int64 // client publishes to $SYS, dropped
	droppedDenied    atomic.Int64 // publishes denied by a topic check
	droppedWill      atomic.Int64 // wills denied by a topic check when they would go out
	droppedShare     atomic.Int64 // shared-subscription messages no member of the group may receive
	malformed        atomic.Int64 // connections closed for a protocol violation
	authExchangeCut  atomic.Int64 // enhanced-authentication exchanges ended by limits.auth-exchange-steps or -timeout
	keepAliveExpired atomic.Int64
	takeovers        atomic.Int64
	// handoverDuplicates: second copies of messages removed from sessions
	// that moved from another node (cluster_handover.go).
	handoverDuplicates atomic.Int64
	authRejected       atomic.Int64
	storeErrors        atomic.Int64 // writes to Options.Store that failed
	storeRefused       atomic.Int64 // publishes refused because their store write failed
	retainedRefused    atomic.Int64 // new retained topics not kept: over max-retained or max-retained-bytes

	// Backpressure (backpressure.go).
	queueOverruns  atomic.Int64 // QoS 1/2 messages queued past the bound for an online subscriber
	acksHeld       atomic.Int64 // PUBACK/PUBREC held back until the subscribers had room
	publishersHeld atomic.Int64 // times a publisher began having its acknowledgements held
	heldNanos      atomic.Int64 // total time publishers had acknowledgements held
	readPauses     atomic.Int64 // times a publisher's reader stopped at max-inbound-qos2 held acknowledgements
	slowSubsCut    atomic.Int64 // subscribers disconnected after slow-subscriber-timeout
}

// Stats is a snapshot of the broker's counters and gauges.
type Stats struct {
	ClientsConnected   int64
	ClientsMaximum     int64
	ClientsTotal       int64
	ClientsPersisted   int64 // sessions kept for offline clients
	ConnectionsRefused int64
	MessagesIn         int64
	MessagesOut        int64
	BytesIn            int64
	BytesOut           int64
	PacketsIn          int64
	PacketsOut         int64
	Subscriptions      int64
	Retained           int64
	RetainedBytes      int64 // topic, payload and properties of the retained messages
	RetainedRefused    int64 // new retained topics not kept: over MaxRetained or MaxRetainedBytes
	Inflight           int64
	Queued             int64
	DroppedQoS0        int64
	DroppedQueueFull   int64
	DroppedTooLarge    int64
	DroppedExpired     int64
	DroppedSys         int64
	DroppedDenied      int64
	DroppedWillDenied  int64
	DroppedShareDenied int64 // every member of a shared subscription's group was denied receiving it
	Malformed          int64
	AuthExchangesCut   int64 // enhanced-authentication exchanges over their step or time bound
	KeepAliveExpired   int64
	Takeovers          int64
	AuthRejected       int64
	UptimeSeconds      int64
	// StoreErrors counts failed writes to Options.Store; StoreRefused the
	// QoS 1/2 publishes refused (MQTT 5: 0x97; 3.1.1: connection closed)
	// because the write they needed failed.
	StoreErrors  int64
	StoreRefused int64

	// Backpressure: a QoS 1/2 message for an online subscriber whose queue
	// is full is queued all the same and its publisher's acknowledgement
	// held back until the subscriber has room.
	QueueOverruns        int64 // messages queued past max-queued for an online subscriber
	AcksHeld             int64 // PUBACK/PUBREC held back
	PublishersHeld       int64 // times a publisher began having its acknowledgements held
	PublishersHeldMillis int64 // total time publishers had acknowledgements held, ms
	PublisherReadPauses  int64 // times a publisher's reading stopped at max-inbound-qos2 held acknowledgements
	SlowSubscribersCut   int64 // subscribers disconnected after slow-subscriber-timeout
}
