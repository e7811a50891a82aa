// Command compose-login checks a running compose stack (docker-compose.yml)
// with a real MQTT 5.0 client: the demo user alice gets in and gets her own
// message back through the plugin's topic rules; a wrong password is refused
// as such (0x86) and an anonymous client as not authorized (0x87).
// scripts/compose-smoke.sh and the hooks-node README run it; it exits 1,
// saying which check failed, when one does.
//
// MQTT 5.0 tells a refusal from an outage: a CONNECT the plugin did not
// answer in time is refused with 0x88 (server unavailable), which is
// reported and tried again, at most three times, instead of passing for a
// refusal or failing a slow but working stack.
//
//	go run ./scripts/compose-login [-addr 127.0.0.1:1883]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

const (
	wait     = 10 * time.Second
	attempts = 3

	accepted          = 0x00
	badCredentials    = 0x86
	notAuthorized     = 0x87
	serverUnavailable = 0x88
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "the broker's MQTT address")
	flag.Parse()
	failed := false
	check := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Printf("FAIL %s: %v\n", name, err)
			return
		}
		fmt.Printf("ok   %s\n", name)
	}
	check("alice/wonderland accepted, and her message comes back through the topic checks", aliceRoundTrip(*addr))
	check("alice with a wrong password refused (0x86)", refused(*addr, "alice", "not-her-password", badCredentials))
	check("anonymous client refused (0x87)", refused(*addr, "", "", notAuthorized))
	if failed {
		os.Exit(1)
	}
}

type client struct {
	c   *paho.Client
	got chan string
}

// connect sends one CONNECT and returns the CONNACK reason code, and the
// client when it was accepted.
func connect(addr, id, user, pass string) (*client, byte, error) {
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, 0, err
	}
	cl := &client{got: make(chan string, 1)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case cl.got <- string(pr.Packet.Payload):
			default:
			}
			return true, nil
		}},
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {},
		PacketTimeout:      wait,
	})
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := cl.c.Connect(ctx, cp)
	switch {
	case ack == nil:
		conn.Close()
		return nil, 0, fmt.Errorf("no CONNACK: %v", err)
	case ack.ReasonCode != accepted:
		conn.Close()
		return nil, ack.ReasonCode, nil
	case err != nil:
		conn.Close()
		return nil, 0, err
	}
	return cl, accepted, nil
}

// connectDecided is connect, tried again while the plugin answers too late.
func connectDecided(addr, id, user, pass string) (*client, byte, error) {
	for i := 1; ; i++ {
		cl, code, err := connect(addr, id, user, pass)
		if err != nil || code != serverUnavailable || i == attempts {
			return cl, code, err
		}
		fmt.Printf("note: CONNECT as %q refused with 0x88 (the plugin did not answer in time); trying again\n", user)
	}
}

// aliceRoundTrip connects as alice, subscribes to her own topic tree and
// publishes into it at QoS 1: the plugin decides the CONNECT, the
// subscription, the publish and the delivery.
func aliceRoundTrip(addr string) error {
	cl, code, err := connectDecided(addr, "compose-smoke-alice", "alice", "wonderland")
	if err != nil || code != accepted {
		return fmt.Errorf("connect: reason code 0x%02x, %v", code, err)
	}
	defer cl.c.Disconnect(&paho.Disconnect{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	const topic = "users/alice/compose-smoke"
	sub, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if sub == nil || len(sub.Reasons) != 1 || sub.Reasons[0] != 1 {
		return fmt.Errorf("subscribe %s: %+v %v, want QoS 1 granted", topic, sub, err)
	}
	pub, err := cl.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("hello")})
	if pub == nil || pub.ReasonCode != 0 {
		return fmt.Errorf("publish %s: %+v %v, want PUBACK 0x00", topic, pub, err)
	}
	select {
	case p := <-cl.got:
		if p != "hello" {
			return fmt.Errorf("received %q, want hello", p)
		}
		return nil
	case <-ctx.Done():
		return errors.New("her own message did not come back within 10s")
	}
}

// refused connects with user and pass and expects the CONNACK to refuse it
// with want.
func refused(addr, user, pass string, want byte) error {
	cl, code, err := connectDecided(addr, fmt.Sprintf("compose-smoke-%d", time.Now().UnixNano()), user, pass)
	if err != nil {
		return err
	}
	if cl != nil {
		cl.c.Disconnect(&paho.Disconnect{})
		return errors.New("the broker accepted it")
	}
	if code != want {
		return fmt.Errorf("refused with reason code 0x%02x, want 0x%02x", code, want)
	}
	return nil
}
