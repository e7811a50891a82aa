// Command compose-login checks a running compose stack (docker-compose.yml)
// with a real MQTT client: the demo user alice gets in and gets a message
// through the plugin's topic rules, a wrong password and an anonymous client
// are refused. scripts/compose-smoke.sh runs it; it exits 1, saying which
// check failed, when one does.
//
//	go run ./scripts/compose-login [-addr 127.0.0.1:1883]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const wait = 10 * time.Second

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
	check("alice with a wrong password refused", refused(*addr, "alice", "not-her-password"))
	check("anonymous client refused", refused(*addr, "", ""))
	if failed {
		os.Exit(1)
	}
}

func options(addr, id, user, pass string) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(wait).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4)
	return o
}

// aliceRoundTrip connects as alice, subscribes to her own topic tree and
// publishes into it at QoS 1: the plugin decides the CONNECT, the
// subscription, the publish and the delivery.
func aliceRoundTrip(addr string) error {
	got := make(chan string, 1)
	c := mqtt.NewClient(options(addr, "compose-smoke-alice", "alice", "wonderland"))
	if t := c.Connect(); !t.WaitTimeout(wait) || t.Error() != nil {
		return fmt.Errorf("connect: %v", tokenErr(t))
	}
	defer c.Disconnect(250)
	const topic = "users/alice/compose-smoke"
	t := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !t.WaitTimeout(wait) || t.Error() != nil {
		return fmt.Errorf("subscribe: %v", tokenErr(t))
	}
	if granted := t.(*mqtt.SubscribeToken).Result()[topic]; granted != 1 {
		return fmt.Errorf("subscribe %s: granted 0x%02x, want QoS 1", topic, granted)
	}
	if t := c.Publish(topic, 1, false, "hello"); !t.WaitTimeout(wait) || t.Error() != nil {
		return fmt.Errorf("publish: %v", tokenErr(t))
	}
	select {
	case p := <-got:
		if p != "hello" {
			return fmt.Errorf("received %q, want hello", p)
		}
		return nil
	case <-time.After(wait):
		return errors.New("her own message did not come back within 10s")
	}
}

// refused connects with user and pass and expects the CONNACK to refuse it.
func refused(addr, user, pass string) error {
	c := mqtt.NewClient(options(addr, fmt.Sprintf("compose-smoke-%d", time.Now().UnixNano()), user, pass))
	t := c.Connect()
	if !t.WaitTimeout(wait) {
		return errors.New("no CONNACK within 10s")
	}
	if t.Error() == nil {
		c.Disconnect(0)
		return errors.New("the broker accepted it")
	}
	code := t.(*mqtt.ConnectToken).ReturnCode()
	if code != 4 && code != 5 { // bad user name or password; not authorized
		return fmt.Errorf("refused with CONNACK 0x%02x (%v), want 0x04 or 0x05", code, t.Error())
	}
	return nil
}

func tokenErr(t mqtt.Token) error {
	if t.Error() != nil {
		return t.Error()
	}
	return errors.New("timed out after 10s")
}
