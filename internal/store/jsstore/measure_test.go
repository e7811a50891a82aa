package jsstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// TestMeasureBroker measures a real broker end to end on this store and
// on pebblestore (durability sync) in the same run: 10 publishers → 10
// persistent subscribers of one filter at QoS 1 (paho clients, each
// publisher keeping up to 64 messages unacknowledged, each message queued
// for all ten sessions), through an embedded nats-server with JetStream.
// The stores alternate within each round and the ratio is taken per
// round. Set MQTTD_JSSTORE_MEASURE=1 to run it; MQTTD_JSSTORE_MSGS (default
// 300 per publisher) and MQTTD_JSSTORE_ROUNDS (default 3) size it.
func TestMeasureBroker(t *testing.T) {
	if os.Getenv("MQTTD_JSSTORE_MEASURE") == "" {
		t.Skip("set MQTTD_JSSTORE_MEASURE=1 to measure")
	}
	perPub, rounds := 300, 3
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_MSGS")); err == nil && v > 0 {
		perPub = v
	}
	if v, err := strconv.Atoi(os.Getenv("MQTTD_JSSTORE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	ns := startNATS(t, t.TempDir(), -1)
	for r := range rounds {
		nc := connect(t, ns.ClientURL())
		js := open(t, nc, Options{Prefix: fmt.Sprint("measure", r)})
		jsRate := measureBroker(t, js, 10, 10, perPub)
		ps, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: store.Sync, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		pRate := measureBroker(t, ps, 10, 10, perPub)
		ps.Close()
		t.Logf("round %d: jetstream %.0f msgs/s, pebble %.0f msgs/s (acknowledged publishes, each to 10 sessions): jetstream/pebble %.3f",
			r, jsRate, pRate, jsRate/pRate)
	}
}

// measureBroker runs one 10→10 load on a broker with st and returns the
// publishes per second, from the first publish until every subscriber
// has every message.
func measureBroker(t *testing.T, st store.Store, npubs, nsubs, perPub int) float64 {
	br, err := mqtt.New(mqtt.Options{
		Listeners:   []mqtt.ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
		Store:       st,
		Logger:      quiet(),
		Limits:      mqtt.Limits{MaxInflight: 1000, MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		br.Close(ctx)
	}()
	url := "tcp://" + br.Addr("tcp").String()
	total := int64(npubs * perPub * nsubs)
	var got atomic.Int64
	all := make(chan struct{})
	for i := range nsubs {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("msub-", i)).
			SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(false)
		c := paho.NewClient(o)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscriber connect:", tk.Error())
		}
		defer c.Disconnect(0)
		tk := c.Subscribe("bench/#", 1, func(paho.Client, paho.Message) {
			if got.Add(1) == total {
				close(all)
			}
		})
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("subscribe:", tk.Error())
		}
	}
	payload := make([]byte, 64)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range npubs {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("mpub-", i)).SetAutoReconnect(false)
		c := paho.NewClient(o)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatal("publisher connect:", tk.Error())
		}
		defer c.Disconnect(0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan paho.Token, 64)
			wait := func(tk paho.Token) {
				if !tk.WaitTimeout(30*time.Second) || tk.Error() != nil {
					t.Error("publish:", tk.Error())
				}
			}
			for range perPub {
				if len(window) == cap(window) {
					wait(<-window)
				}
				window <- c.Publish(fmt.Sprint("bench/", i), 1, false, payload)
			}
			close(window)
			for tk := range window {
				wait(tk)
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(120 * time.Second):
		t.Fatalf("delivered %d of %d", got.Load(), total)
	}
	return float64(npubs*perPub) / time.Since(start).Seconds()
}
