package admin

import (
	"context"
	"net"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
)

// An MQTT 5 client as the API shows it (protocol 5, its subscription
// options), and a kick through the API as it sees it: DISCONNECT 0x98.
func TestV5ClientViewAndKick(t *testing.T) {
	e := startEnv(t, envOptions{token: testToken})
	conn, err := net.DialTimeout("tcp", e.mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	disc := make(chan *pahov5.Disconnect, 1)
	c := pahov5.NewClient(pahov5.ClientConfig{
		Conn:               conn,
		OnServerDisconnect: func(d *pahov5.Disconnect) { disc <- d },
		PacketTimeout:      5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	expiry := uint32(600)
	if _, err := c.Connect(ctx, &pahov5.Connect{ClientID: "v5-dev", Username: "dave", UsernameFlag: true, KeepAlive: 30, CleanStart: true,
		Properties: &pahov5.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	subID := 7
	if _, err := c.Subscribe(ctx, &pahov5.Subscribe{
		Properties:    &pahov5.SubscribeProperties{SubscriptionIdentifier: &subID},
		Subscriptions: []pahov5.SubscribeOptions{{Topic: "$share/g/s/+", QoS: 1}, {Topic: "own/#", QoS: 2, NoLocal: true, RetainAsPublished: true}},
	}); err != nil {
		t.Fatal(err)
	}

	var d adminapi.ClientDetail
	e.must(200, "GET", "/api/v1/clients/v5-dev", "").decode(t, &d)
	if d.Protocol != 5 || d.Username != "dave" || d.Clean || d.Expiry != 600 || len(d.Subscriptions) != 2 {
		t.Fatalf("v5-dev = %+v", d)
	}
	own, shared := d.Subscriptions[0], d.Subscriptions[1]
	if own.Filter != "own/#" || own.QOS != 2 || !own.NoLocal || !own.RetainAsPublished || own.SubscriptionID != 7 || own.ShareGroup != "" {
		t.Fatalf("own/# = %+v", own)
	}
	if shared.Filter != "s/+" || shared.ShareGroup != "g" || shared.QOS != 1 {
		t.Fatalf("shared = %+v", shared)
	}
	var subs adminapi.SubscriptionList
	e.must(200, "GET", "/api/v1/subscriptions?q=v5-dev&limit=1", "").decode(t, &subs)
	if subs.Total != 2 || len(subs.Items) != 1 || subs.Next == "" {
		t.Fatalf("page 1 = %+v", subs)
	}
	e.must(200, "GET", "/api/v1/subscriptions?q=v5-dev&limit=1&cursor="+subs.Next, "").decode(t, &subs)
	if len(subs.Items) != 1 || subs.Items[0].ShareGroup != "g" || subs.Next != "" {
		t.Fatalf("page 2 = %+v", subs)
	}

	e.must(200, "POST", "/api/v1/clients/v5-dev/kick", `{"discard_session": true}`)
	select {
	case p := <-disc:
		if p.ReasonCode != 0x98 {
			t.Fatalf("DISCONNECT reason 0x%02x, want 0x98 (administrative action)", p.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DISCONNECT from the broker")
	}
	e.must(404, "GET", "/api/v1/clients/v5-dev", "")
}
