package hooks

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// startBroker runs a real broker on 127.0.0.1 with m's hooks, after m's
// Start; cleanup closes the broker and then m. It and stopBroker are
// hookstest's Serve and Stop, named for this package's e2e tests.
func startBroker(t *testing.T, m *Manager) (*mqtt.Broker, string) {
	t.Helper()
	return hookstest.Serve(t, m)
}

// stopBroker closes the broker, then the plugins; a second call is a no-op.
func stopBroker(t *testing.T, b *mqtt.Broker, m *Manager) {
	t.Helper()
	hookstest.Stop(t, b, m)
}

// v3 is a paho.mqtt.golang (MQTT 3.1.1) client whose messages arrive on msgs
// as "topic=payload" and whose lost connection closes lost.
type v3 struct {
	paho.Client
	t    *testing.T
	msgs chan string
	lost chan struct{}
	ack  *paho.ConnectToken

	answered bool // a CONNACK came
}

// dialV3 connects with a persistent session unless clean; password "" sends
// none. It returns the client whatever the CONNACK said (see ack, and
// answered: false when none came within bound). It does not fail the test,
// so it may run on a goroutine of its own.
func dialV3(t *testing.T, addr, id string, clean bool, password string) *v3 {
	c := &v3{t: t, msgs: make(chan string, 1024), lost: make(chan struct{})}
	var once sync.Once
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectTimeout(bound).SetKeepAlive(30 * time.Second).SetProtocolVersion(4).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m.Topic() + "=" + string(m.Payload()) }).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(c.lost) }) })
	if password != "" {
		o.SetUsername("user").SetPassword(password)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	c.answered = tok.WaitTimeout(bound)
	c.ack = tok.(*paho.ConnectToken)
	if c.answered && tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(50) })
	}
	return c
}

// mustV3 is dialV3 failing the test unless the client was accepted.
func mustV3(t *testing.T, addr, id string, clean bool) *v3 {
	t.Helper()
	c := dialV3(t, addr, id, clean, "")
	if !c.answered {
		t.Fatalf("%s: no CONNACK", id)
	}
	if err := c.ack.Error(); err != nil {
		t.Fatalf("%s: connect: %v", id, err)
	}
	return c
}

// done waits for a token and fails on its error.
func (c *v3) done(what string, tok paho.Token) {
	c.t.Helper()
	if !tok.WaitTimeout(bound) {
		c.t.Fatalf("%s: no answer", what)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *v3) sub(filter string, qos byte) {
	c.t.Helper()
	c.done("subscribe "+filter, c.Subscribe(filter, qos, nil))
}

func (c *v3) pub(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	c.done("publish "+topic, c.Publish(topic, qos, retain, payload))
}

// next is the next message received.
func (c *v3) next() string {
	c.t.Helper()
	return wait(c.t, "a message", c.msgs)
}

// until collects messages up to and including marker.
func (c *v3) until(marker string) []string {
	c.t.Helper()
	var got []string
	for {
		m := c.next()
		got = append(got, m)
		if m == marker {
			return got
		}
	}
}

// dialV5 connects a paho.golang (MQTT 5) client asking for problem
// information; it returns the CONNACK and the connect error.
func dialV5(t *testing.T, addr, id string, password string) (*pahov5.Client, *pahov5.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound})
	cp := &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{RequestProblemInfo: true}}
	if password != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = "user", true, []byte(password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return c, ack, err
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c, ack, nil
}

// hold is a hook that blocks one chosen check until the test releases it,
// so a test can see what happens meanwhile; decided is set once it
// returns.
type hold struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	decided atomic.Bool
}

func newHold() *hold { return &hold{entered: make(chan struct{}, 1), release: make(chan struct{})} }

// block waits for the release (or the check's end), then allows.
func (h *hold) block(ctx context.Context) (Decision, error) {
	defer h.decided.Store(true)
	h.entered <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	case <-time.After(bound):
	}
	return Decision{Result: Allow}, nil
}

func (h *hold) free() { h.once.Do(func() { close(h.release) }) }
