package mqtt

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// pahoClient connects a paho.mqtt.golang client (MQTT 3.1.1) to addr.
func pahoClient(t *testing.T, addr, id string, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, _ := pahoConnect(t, "tcp://"+addr, id, mod)
	return c
}

// pahoConnect connects a paho.mqtt.golang client to the broker at url and
// also returns the CONNACK's session present flag.
func pahoConnect(t *testing.T, url, id string, mod func(*paho.ClientOptions)) (paho.Client, bool) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(3 * time.Second).SetKeepAlive(30 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

// waitToken waits for a paho.mqtt.golang token and fails on its error.
func waitToken(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// pahoV5Client is a paho.golang (MQTT 5) client whose received PUBLISH
// packets arrive on msgs, and whose server DISCONNECT (if any) arrives on
// disc.
type pahoV5Client struct {
	*pahov5.Client
	t    *testing.T
	ack  *pahov5.Connack
	msgs chan *pahov5.Publish
	disc chan *pahov5.Disconnect
	once sync.Once
}

// pahoV5 connects a paho.golang client to addr with cp (ClientID and
// KeepAlive are filled in when empty); mod may adjust the client config.
// It fails the test unless the CONNACK is a success.
func pahoV5(t *testing.T, addr string, cp *pahov5.Connect, mod func(*pahov5.ClientConfig)) *pahoV5Client {
	t.Helper()
	c, err := tryPahoV5(t, addr, cp, mod)
	if err != nil {
		t.Fatalf("paho v5 connect %q: %v", cp.ClientID, err)
	}
	return c
}

// tryPahoV5 is pahoV5 returning the connect error (and CONNACK in c.ack,
// when there was one) instead of failing.
func tryPahoV5(t *testing.T, addr string, cp *pahov5.Connect, mod func(*pahov5.ClientConfig)) (*pahoV5Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	vc := &pahoV5Client{t: t, msgs: make(chan *pahov5.Publish, 4096), disc: make(chan *pahov5.Disconnect, 1)}
	cfg := pahov5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			vc.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case vc.disc <- d:
			default:
			}
		},
		PacketTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	vc.Client = pahov5.NewClient(cfg)
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := vc.Connect(ctx, cp)
	vc.ack = ack
	if err != nil {
		conn.Close()
		return vc, err
	}
	t.Cleanup(func() { vc.stop() })
	return vc, nil
}

// stop disconnects normally (once).
func (c *pahoV5Client) stop() {
	c.once.Do(func() {
		_ = c.Disconnect(&pahov5.Disconnect{ReasonCode: 0})
	})
}

// sub subscribes with the given options and fails unless every filter is
// granted.
func (c *pahoV5Client) sub(subID int, opts ...pahov5.SubscribeOptions) *pahov5.Suback {
	c.t.Helper()
	s := &pahov5.Subscribe{Subscriptions: opts}
	if subID != 0 {
		s.Properties = &pahov5.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Subscribe(ctx, s)
	if err != nil {
		c.t.Fatalf("subscribe %+v: %v", opts, err)
	}
	return ack
}

// pub publishes and fails on an error (a reason code >= 0x80 is an error
// for QoS 1); it returns the acknowledgement.
func (c *pahoV5Client) pub(p *pahov5.Publish) *pahov5.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// recv waits for the next message.
func (c *pahoV5Client) recv(timeout time.Duration) *pahov5.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		c.t.Fatalf("%s: no message within %v", c.ClientID(), timeout)
		return nil
	}
}

// none asserts no message arrives within d.
func (c *pahoV5Client) none(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("%s: unexpected message %s %q", c.ClientID(), m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// ptr returns a pointer to v (paho.golang's optional properties).
func ptr[T any](v T) *T { return &v }

// sameIDs reports whether two subscription identifier lists hold the same
// identifiers, in any order.
func sameIDs(got, want []uint32) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
