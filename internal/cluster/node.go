package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// Options configures a Node. The config keys under cluster map onto them.
type Options struct {
	URLs        []string // NATS servers
	Name        string   // this node's name, unique in the cluster
	Prefix      string   // of subjects and bucket names; default "mqttd"
	Replicas    int      // of the JetStream buckets; default 1
	NodeLease   time.Duration
	Credentials string // NATS credentials file
	NKey        string // NATS NKey seed file
	TLSCA       string
	TLSCert     string
	TLSKey      string
	Logger      *slog.Logger
	// RetryMax caps the wait between attempts to reach NATS at start
	// (default 10 s).
	RetryMax time.Duration
	// InterestTimeout bounds how long a SUBACK waits for the other nodes
	// to acknowledge the new interest (default 2 s).
	InterestTimeout time.Duration
	// HandoverTimeout bounds how long a CONNECT waits for the node that
	// holds its session in a shared store to let it go (default 5 s).
	HandoverTimeout time.Duration
	// ForwardTimeout bounds how long a QoS 1/2 publish waits for the nodes
	// subscribed to its topic to confirm it (default 5 s).
	ForwardTimeout time.Duration
	// ReceiveQueue bounds the messages from other nodes (NATS messages,
	// each a batch of one topic) waiting to be routed, per inbox (one per
	// CPU); more are dropped and counted (default 8192).
	ReceiveQueue int
}

// opTimeout bounds one JetStream operation made on a client's behalf.
const opTimeout = 5 * time.Second

// Node is this broker's membership of a cluster. It implements
// mqtt.Cluster; give it to mqtt.Options.Cluster and call Start with the
// broker before the broker's Start.
type Node struct {
	opts     Options
	log      *slog.Logger
	instance string     // this process, as against an earlier one of the same name
	nc       *nats.Conn // publishes and plain subscriptions; never hears itself
	ncShared *nats.Conn // shared subscriptions' queue groups; hears this node too
	js       jetstream.JetStream
	broker   atomic.Pointer[mqtt.Broker]

	nodes    jetstream.KeyValue
	retained *retainedSync
	owners   *owners
	routes   *router
	lease    *lease

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	bgMu   sync.Mutex
	bg     sync.WaitGroup // releases of client ids
	closed bool
	stats  Stats

	confirms *confirms
	out      *outbox

	warnForward, warnRetain, warnClaim, warnBad, warnUnconfirmed throttle
}

// Stats counts what the cluster could not do; each is logged as it happens.
type Stats struct {
	ForwardFailed atomic.Int64 // messages not handed to NATS (too large, subject too long, disconnected too long)
	RemoteBad     atomic.Int64 // messages from other nodes that did not decode
	// ReceiveDropped counts the times messages from other nodes were
	// dropped because routing them fell behind (cluster.receive-queue
	// full, or a NATS pending limit).
	ReceiveDropped atomic.Int64
	RetainFailed   atomic.Int64 // retained messages not stored in their bucket
	ClaimFailed    atomic.Int64 // client ids this node could not take ownership of

	ForwardUnconfirmed atomic.Int64 // QoS 1/2 messages other nodes did not confirm in time (their publisher refused)

	Forwarded        atomic.Int64 // messages handed to NATS (batched for it: one whose batch NATS refused counts in ForwardFailed too)
	ForwardSkipped   atomic.Int64 // messages no other node wanted, kept off NATS
	InterestTimeouts atomic.Int64 // nodes that did not acknowledge new interest in time
	InterestResyncs  atomic.Int64 // lost interest announcements noticed (the sender's set fetched again)
	// With a shared store (handover.go):
	HandedOver      atomic.Int64 // sessions another node let go of for a client connecting here
	HandoverRefused atomic.Int64 // CONNECTs refused: the node holding the session did not let go within the handover timeout
	Adopted         atomic.Int64 // sessions of dead nodes loaded here
}

// Open connects to NATS, retrying with backoff until it answers or ctx
// ends, prepares the buckets and claims the node's name. A name another
// running node holds is refused.
func Open(ctx context.Context, o Options) (*Node, error) {
	if o.Prefix == "" {
		o.Prefix = "mqttd"
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	if o.NodeLease <= 0 {
		o.NodeLease = 10 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.InterestTimeout <= 0 {
		o.InterestTimeout = 2 * time.Second
	}
	if o.HandoverTimeout <= 0 {
		o.HandoverTimeout = 5 * time.Second
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = 5 * time.Second
	}
	if o.ReceiveQueue <= 0 {
		o.ReceiveQueue = 8192
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{opts: o, log: o.Logger.With("component", "cluster"), instance: o.Name + "-" + randomHex()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	nc, err := n.dial(ctx)
	if err != nil {
		n.cancel()
		return nil, err
	}
	n.nc = nc
	if n.ncShared, err = n.dialShared(); err != nil {
		nc.Close()
		n.cancel()
		return nil, err
	}
	if err := n.setup(ctx); err != nil {
		nc.Close()
		n.ncShared.Close()
		n.cancel()
		return nil, err
	}
	return n, nil
}

func (n *Node) setup(ctx context.Context) error {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.js = js
	bucket := func(suffix string, ttl time.Duration) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: n.opts.Prefix + "-" + suffix, History: 1, TTL: ttl, Replicas: n.opts.Replicas,
			Storage: jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("cluster: JetStream bucket %s-%s: %w (is JetStream enabled on the NATS servers, with room for %d replicas?)",
				n.opts.Prefix, suffix, err, n.opts.Replicas)
		}
		return kv, nil
	}
	if n.nodes, err = bucket("nodes", n.opts.NodeLease); err != nil {
		return err
	}
	rkv, err := bucket("retained", 0)
	if err != nil {
		return err
	}
	skv, err := bucket("sessions", 0)
	if err != nil {
		return err
	}
	n.retained = &retainedSync{n: n, kv: rkv, revs: make(map[string]uint64), advanced: make(chan struct{})}
	n.owners = &owners{n: n, kv: skv, revs: make(map[string]uint64)}
	n.routes = newRouter(n)
	n.confirms = newConfirms(n)
	n.out = newOutbox(n)
	n.wg.Add(1)
	go n.out.sendLoop()
	for _, in := range n.routes.inbox {
		n.wg.Add(1)
		go n.routes.dispatch(in)
	}
	if err := n.confirms.listen(); err != nil {
		return fmt.Errorf("cluster: forward confirmations: %w", err)
	}
	if err := n.routes.peers.listen(); err != nil {
		return fmt.Errorf("cluster: interest announcements: %w", err)
	}
	n.lease = &lease{n: n}
	if err := n.lease.acquire(ctx); err != nil {
		return err
	}
	// Heartbeats from now on: the other nodes see this one in the leases.
	n.wg.Add(1)
	go n.routes.peers.keep()
	return nil
}

// dial connects to NATS, retrying with a doubling wait until ctx ends.
func (n *Node) dial(ctx context.Context) (*nats.Conn, error) {
	opts, err := n.natsOptions()
	if err != nil {
		return nil, err
	}
	url := strings.Join(n.opts.URLs, ",")
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, append(opts, nats.NoEcho())...) // a node never hears its own publishes
		if err == nil {
			n.log.Info("cluster: connected to NATS", "server", nc.ConnectedUrlRedacted(), "node", n.opts.Name)
			return nc, nil
		}
		n.log.Warn("cluster: NATS not reachable; the node is not ready until it is", "nats", url,
			"attempt", attempt, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: NATS at %s not reachable: %w (last error: %v)", url, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, n.opts.RetryMax)
	}
}

// dialShared opens the connection for shared subscriptions, once the
// first one has reached NATS.
func (n *Node) dialShared() (*nats.Conn, error) {
	opts, err := n.natsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name("mqttd "+n.opts.Name+" shared"))
	nc, err := nats.Connect(strings.Join(n.opts.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: second NATS connection: %w", err)
	}
	return nc, nil
}

func (n *Node) natsOptions() ([]nats.Option, error) {
	o := n.opts
	opts := []nats.Option{
		nats.Name("mqttd " + o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("cluster: lost NATS; local traffic goes on, other nodes are out of reach", "err", err)
			n.lostNATS()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info("cluster: NATS reconnected", "server", nc.ConnectedUrlRedacted())
			n.afterReconnect()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.stats.ReceiveDropped.Add(1)
			}
			n.log.Warn("cluster: NATS error", "subject", subj, "err", err)
		}),
	}
	if o.Credentials != "" {
		opts = append(opts, nats.UserCredentials(o.Credentials))
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("cluster: nkey %s: %w", o.NKey, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// Start attaches the broker: retained messages stored by the cluster are
// loaded into it, takeovers from other nodes are answered, and the node's
// name is kept claimed. Call it after mqtt.New and before the broker's
// Start.
func (n *Node) Start(ctx context.Context, b *mqtt.Broker) error {
	n.broker.Store(b)
	if err := n.owners.start(); err != nil {
		return err
	}
	if err := n.retained.start(ctx); err != nil {
		return err
	}
	n.wg.Add(1)
	go n.lease.keep()
	if b.SharesStore() {
		n.wg.Add(1)
		go n.owners.adopter()
	}
	return nil
}

// Recovered runs when the broker has restored its sessions from its own
// store and the other nodes acknowledged their subscriptions, before its
// listeners open. With a shared store, where nothing is restored, the
// node adopts now the sessions the owner entries give to its name (an
// earlier run's), as a restart with its own store restores them. Either
// way this run then holds every session earlier runs of its name left,
// and says so (router.rejoin), so the other nodes let go of those runs'
// filters, which they hold meanwhile and refuse QoS 1/2 publishes for.
// Like a SUBACK it waits, bounded by the interest timeout, for their
// acknowledgement. When the adoption cannot finish now, the adopter's
// first pass, once the listeners are open, says it instead.
func (n *Node) Recovered() {
	b := n.broker.Load()
	if b == nil {
		return
	}
	if !b.SharesStore() {
		n.routes.peers.await(n.routes.rejoin(nil))
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	if err := n.owners.adoptAll(ctx, map[string]bool{}, true); err != nil && n.ctx.Err() == nil {
		n.log.Warn("cluster: could not take back this node's sessions at start; the adopter will", "err", err)
	}
}

// Resync applies the cluster's retained messages again, over those the
// broker recovered from its own store at Start (which may be older: set or
// cleared on other nodes while this one was down). Call it after the
// broker's Start when the broker has a store.
func (n *Node) Resync(ctx context.Context) error { return n.retained.resync(ctx) }

// Connected reports whether the node reaches NATS now: /readyz is false
// while it does not.
func (n *Node) Connected() bool { return n.nc.IsConnected() && n.ncShared.IsConnected() }

// Stats are the node's failure counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Close gives the node's name back and disconnects from NATS.
func (n *Node) Close() error {
	n.bgMu.Lock()
	n.closed = true
	n.bgMu.Unlock()
	n.cancel()
	n.wg.Wait()
	n.bg.Wait()
	n.routes.peers.stop()
	n.retained.stop()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if n.lease.rev != 0 && n.nc.IsConnected() {
		n.routes.bye()
	}
	n.lease.release(ctx)
	n.nc.Close()
	n.ncShared.Close()
	return nil
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// subject is a NATS subject under the prefix.
func (n *Node) subject(parts ...string) string {
	return n.opts.Prefix + "." + strings.Join(parts, ".")
}

// MaxPayload is the largest message NATS carries (its max_payload).
func (n *Node) MaxPayload() int64 { return n.nc.MaxPayload() }

// afterReconnect restarts what does not survive a restarted NATS server by
// itself (core subscriptions do: nats.go sends them again).
func (n *Node) afterReconnect() {
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.closed || n.retained == nil {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.routes.peers.reconnected()
		n.retained.rewatch()
	}()
}

// lostNATS makes the node forward every message until it has caught up
// with the other nodes' interest after the reconnection.
func (n *Node) lostNATS() {
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if !n.closed && n.routes != nil {
		n.routes.peers.lost()
	}
}
