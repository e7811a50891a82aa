package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

const testToken = "s3cret-admin-token"

// accountsServer is a real HTTP plugin: it allows every user but those in
// denied, with cacheable answers, and counts its authenticate calls.
type accountsServer struct {
	srv    *httptest.Server
	denied atomic.Value // map[string]bool
	calls  atomic.Int64
}

func newAccountsServer(t *testing.T) *accountsServer {
	a := &accountsServer{}
	a.denied.Store(map[string]bool{"mallory": true})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /manifest", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"accounts","version":"1","authenticate":true,"topic_filtering":false,"events":[]}`))
	})
	mux.HandleFunc("POST /authenticate", func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		var req struct {
			Username string `json:"username"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if a.denied.Load().(map[string]bool)[req.Username] {
			w.Write([]byte(`{"result":"deny","reason_code":134,"reason":"account disabled","cache_ttl":60}`))
			return
		}
		w.Write([]byte(`{"result":"allow","cache_ttl":60}`))
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// startWithPlugin starts a broker whose auth is the accounts plugin over
// HTTP, through the hooks manager as cmd/mqttd builds it, plus a built-in
// alias the API must list without a status.
func startWithPlugin(t *testing.T, token string) (*env, *accountsServer) {
	t.Helper()
	acc := newAccountsServer(t)
	p, err := webhook.New(webhook.Options{
		Alias:   "accounts",
		URL:     acc.srv.URL,
		Timeout: 5 * time.Second,
		Cache:   webhook.CacheOptions{Size: 100, TTL: time.Minute},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := hooks.New(hooks.Options{
		Broker:  "test",
		Plugins: map[string]hooks.PluginSpec{"accounts": {Plugin: p, Type: "http", Timeout: 5 * time.Second}},
		Auth:    hooks.AuthOptions{Plugins: []string{"accounts"}},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		mgr.Close(ctx)
	})
	list := func() []PluginInfo {
		return []PluginInfo{
			{Alias: "accounts", Type: "http", Capabilities: []string{"authenticate"}, HTTP: p},
			{Alias: "audit", Type: "event-log", Capabilities: []string{"events"}},
		}
	}
	e := startEnv(t, envOptions{
		token:   token,
		hooks:   mgr.Hooks(),
		plugins: list,
		legacy:  webhook.AdminRoutes(func() []*webhook.Plugin { return []*webhook.Plugin{p} }, nil),
	})
	return e, acc
}

func TestClientsSubscriptionsAndKick(t *testing.T) {
	e, _ := startWithPlugin(t, testToken)
	got := make(chan paho.Message, 10)
	s1 := e.client("sensor-1", "alice", nil)
	if tok := s1.Subscribe("a/#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	lost := make(chan error, 1)
	e.client("sensor-2", "bob", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	e.client("keeper", "carol", func(o *paho.ClientOptions) { o.SetCleanSession(false) })

	var list adminapi.ClientList
	e.must(200, "GET", "/api/v1/clients", "").decode(t, &list)
	if list.Total != 3 || len(list.Items) != 3 || list.Items[0].ClientID != "keeper" || list.Items[2].ClientID != "sensor-2" {
		t.Fatalf("clients = %+v", list)
	}
	c := list.Items[1]
	if c.Username != "alice" || c.Protocol != 4 || c.Listener != "tcp" || c.Transport != "tcp" || !c.Connected ||
		c.ConnectedAt == nil || c.Subscriptions != 1 || !strings.HasPrefix(c.RemoteAddr, "127.0.0.1:") {
		t.Fatalf("sensor-1 = %+v", c)
	}

	// Search and paging.
	e.must(200, "GET", "/api/v1/clients?q=ALI", "").decode(t, &list)
	if list.Total != 1 || list.Items[0].ClientID != "sensor-1" {
		t.Fatalf("q=ALI: %+v", list)
	}
	e.must(200, "GET", "/api/v1/clients?limit=2", "").decode(t, &list)
	if len(list.Items) != 2 || list.Next == "" || list.Total != 3 {
		t.Fatalf("page 1: %+v", list)
	}
	e.must(200, "GET", "/api/v1/clients?limit=2&cursor="+list.Next, "").decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].ClientID != "sensor-2" || list.Next != "" {
		t.Fatalf("page 2: %+v", list)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "cursor=***"} {
		if msg := e.must(400, "GET", "/api/v1/clients?"+bad, "").errorText(t); msg == "" {
			t.Fatal("no message")
		}
	}

	var one adminapi.ClientDetail
	e.must(200, "GET", "/api/v1/clients/sensor-1", "").decode(t, &one)
	if !one.Connected || !one.Clean || len(one.Subscriptions) != 1 || one.Subscriptions[0].Filter != "a/#" || one.Subscriptions[0].QOS != 1 {
		t.Fatalf("sensor-1 detail = %+v", one)
	}
	e.must(404, "GET", "/api/v1/clients/nobody", "")

	var subs adminapi.SubscriptionList
	e.must(200, "GET", "/api/v1/subscriptions", "").decode(t, &subs)
	if subs.Total != 1 || subs.Items[0].ClientID != "sensor-1" || subs.Items[0].Filter != "a/#" {
		t.Fatalf("subscriptions = %+v", subs)
	}
	e.must(200, "GET", "/api/v1/subscriptions?q=zzz", "").decode(t, &subs)
	if subs.Total != 0 || len(subs.Items) != 0 {
		t.Fatalf("q=zzz: %+v", subs)
	}

	// Kick: the connection ends, the client list follows.
	var kick adminapi.KickResult
	e.must(200, "POST", "/api/v1/clients/sensor-2/kick", `{"discard_session": false}`).decode(t, &kick)
	if !kick.Kicked || kick.SessionDiscarded {
		t.Fatalf("kick = %+v", kick)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("sensor-2 was not disconnected")
	}
	waitFor(t, "sensor-2 to leave the list", func() bool {
		var l adminapi.ClientList
		e.must(200, "GET", "/api/v1/clients?q=sensor-2", "").decode(t, &l)
		return l.Total == 0
	})
	e.must(404, "POST", "/api/v1/clients/nobody/kick", `{}`)

	// Kick with discard: the persistent session is gone too; an offline
	// one shows with include_offline until then.
	e.must(200, "POST", "/api/v1/clients/keeper/kick", "").decode(t, &kick) // no body: defaults
	if !kick.Kicked {
		t.Fatalf("kick keeper = %+v", kick)
	}
	waitFor(t, "keeper offline", func() bool {
		var d adminapi.ClientDetail
		e.must(200, "GET", "/api/v1/clients/keeper", "").decode(t, &d)
		return !d.Connected && d.ConnectedAt == nil
	})
	e.must(200, "GET", "/api/v1/clients?include_offline=true&q=keeper", "").decode(t, &list)
	if list.Total != 1 || list.Items[0].Connected {
		t.Fatalf("offline keeper = %+v", list)
	}
	e.must(200, "POST", "/api/v1/clients/keeper/kick", `{"discard_session": true}`).decode(t, &kick)
	if kick.Kicked || !kick.SessionDiscarded {
		t.Fatalf("discard offline keeper = %+v", kick)
	}
	e.must(404, "GET", "/api/v1/clients/keeper", "")
	e.must(400, "POST", "/api/v1/clients/sensor-1/kick", `{"discard": true}`) // unknown field
	e.must(400, "POST", "/api/v1/clients/sensor-1/kick", `{"discard_session": "yes"}`)

	// Publish as the broker, then the retained message's routes.
	var pub adminapi.PublishResult
	e.must(200, "POST", "/api/v1/publish",
		`{"topic":"a/b","payload":"hi","qos":1,"retain":true,"properties":{"content_type":"text/plain","user_properties":[{"key":"k","value":"v"}]}}`).decode(t, &pub)
	if pub.Delivered != 1 {
		t.Fatalf("publish = %+v", pub)
	}
	select {
	case m := <-got:
		if m.Topic() != "a/b" || string(m.Payload()) != "hi" || m.Qos() != 1 {
			t.Fatalf("sensor-1 got %s %q qos %d", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the published message did not arrive")
	}
	e.must(200, "POST", "/api/v1/publish", `{"topic":"bin/x","payload_base64":"AAEC","retain":true}`).decode(t, &pub)
	if pub.Delivered != 0 {
		t.Fatalf("publish to nobody = %+v", pub)
	}
	for _, bad := range []string{
		`{"topic":"a/+","payload":"x"}`,
		`{"topic":"$SYS/x","payload":"x"}`,
		`{"payload":"x"}`,
		`{"topic":"a","payload":"x","payload_base64":"AA=="}`,
		`{"topic":"a","qos":3}`,
		`{"topic":"a","properties":{"payload_format_indicator":2}}`,
		`not json`,
	} {
		e.must(400, "POST", "/api/v1/publish", bad)
	}

	var rl adminapi.RetainedList
	e.must(200, "GET", "/api/v1/retained", "").decode(t, &rl)
	if rl.Total != 2 || rl.Items[0].Topic != "a/b" || rl.Items[1].Topic != "bin/x" {
		t.Fatalf("retained = %+v", rl)
	}
	e.must(200, "GET", "/api/v1/retained?filter=a/%23&limit=1", "").decode(t, &rl)
	if rl.Total != 1 || string(rl.Items[0].PayloadBase64) != "hi" || rl.Items[0].Properties == nil ||
		*rl.Items[0].Properties.ContentType != "text/plain" || rl.Items[0].StoredAt.IsZero() {
		t.Fatalf("retained a/# = %+v", rl)
	}
	e.must(400, "GET", "/api/v1/retained?filter=a/%23/b", "")
	var rm adminapi.RetainedMessage
	e.must(200, "GET", "/api/v1/retained/a%2Fb", "").decode(t, &rm)
	if rm.Topic != "a/b" || string(rm.PayloadBase64) != "hi" || rm.QOS != 1 {
		t.Fatalf("retained a/b = %+v", rm)
	}
	e.must(200, "GET", "/api/v1/retained/a/b", "") // unescaped slashes too
	e.must(200, "DELETE", "/api/v1/retained/a%2Fb", "")
	e.must(404, "GET", "/api/v1/retained/a%2Fb", "")
	e.must(404, "DELETE", "/api/v1/retained/a%2Fb", "")

	var st adminapi.Stats
	e.must(200, "GET", "/api/v1/stats", "").decode(t, &st)
	if st.ClientsConnected != 1 || st.Subscriptions != 1 || st.Retained != 1 || st.MessagesSent < 1 || st.Time.IsZero() {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPluginsPurgeAndRefusals(t *testing.T) {
	e, acc := startWithPlugin(t, testToken)
	e.client("c1", "alice", nil)
	e.client("c2", "bob", nil)

	o := paho.NewClientOptions().AddBroker("tcp://" + e.mqttAddr).SetClientID("m1").SetUsername("mallory").SetAutoReconnect(false)
	if tok := paho.NewClient(o).Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Fatal("mallory was let in")
	}
	// The route shows what the broker keeps (see TestRefusalsMapping for
	// the fields).
	var refusals adminapi.RefusalList
	e.must(200, "GET", "/api/v1/refusals", "").decode(t, &refusals)
	if len(refusals.Items) != len(e.b.RecentRefusals()) {
		t.Fatalf("refusals = %+v, broker has %+v", refusals, e.b.RecentRefusals())
	}

	var pl adminapi.PluginList
	e.must(200, "GET", "/api/v1/plugins", "").decode(t, &pl)
	if len(pl.Items) != 2 || pl.Items[0].Status == nil || pl.Items[1].Status != nil || pl.Items[1].Type != "event-log" {
		t.Fatalf("plugins = %+v", pl)
	}
	st := pl.Items[0].Status
	ep := st.Endpoints["authenticate"]
	// Four decisions: alice, bob, and mallory twice, since paho retries a
	// refused 3.1.1 CONNECT as 3.1, and the protocol version is part of
	// the authenticate cache key (it is sent to the plugin).
	if st.CacheEntries != 4 || !st.Ready || ep.BreakerState != "closed" || ep.Calls != 4 || ep.LatencyP50Ms <= 0 || ep.LatencyP99Ms < ep.LatencyP50Ms {
		t.Fatalf("accounts status = %+v, authenticate %+v", st, ep)
	}

	var pr adminapi.PurgeResult
	e.must(200, "POST", "/api/v1/cache/purge", `{"username":"alice"}`).decode(t, &pr)
	if pr.Purged != 1 || pr.Plugins["accounts"] != 1 {
		t.Fatalf("purge alice = %+v", pr)
	}
	e.must(200, "POST", "/api/v1/plugins/accounts/cache/purge", `{"client_id":"c2"}`).decode(t, &pr)
	if pr.Purged != 1 {
		t.Fatalf("purge c2 = %+v", pr)
	}
	e.must(400, "POST", "/api/v1/cache/purge", `{"client_id":"c2","username":"bob"}`)
	e.must(413, "POST", "/api/v1/cache/purge", `{"username":"`+strings.Repeat("x", 70<<10)+`"}`) // over MaxBody
	e.must(404, "POST", "/api/v1/plugins/nope/cache/purge", `{}`)
	if msg := e.must(404, "POST", "/api/v1/plugins/audit/cache/purge", `{}`).errorText(t); !strings.Contains(msg, "built-in") {
		t.Fatalf("purging a built-in: %q", msg)
	}
	e.must(200, "POST", "/api/v1/cache/purge", "").decode(t, &pr) // everything
	if pr.Purged != 2 {                                           // mallory's denies, as 3.1.1 and 3.1
		t.Fatalf("purge all = %+v", pr)
	}

	// The purge is real: alice's next login asks the plugin again.
	before := acc.calls.Load()
	e.client("c3", "alice", nil)
	if acc.calls.Load() != before+1 {
		t.Fatal("alice's login was answered from a purged cache")
	}

	// The legacy /plugins routes still answer, behind the same guard.
	var legacy []webhook.Status
	e.must(200, "GET", "/plugins/", "").decode(t, &legacy)
	if len(legacy) != 1 || legacy[0].Alias != "accounts" {
		t.Fatalf("legacy = %+v", legacy)
	}
	e.must(401, "GET", "/plugins/", "", "Authorization", "")
}

// Every operation of api/admin.yaml has been seen to succeed, its
// request and answer valid against the spec.
func TestContractCoversEveryOperation(t *testing.T) {
	t.Run("clients", TestClientsSubscriptionsAndKick)
	t.Run("plugins", TestPluginsPurgeAndRefusals)
	if missing := loadContract(t).unseen(); len(missing) > 0 {
		t.Fatalf("operations of api/admin.yaml no test saw succeed: %v", missing)
	}
}

// refusalsBroker is a real broker whose refusals are fixed, to check how
// the API shows each field.
type refusalsBroker struct {
	Broker
	list []mqtt.Refusal
}

func (r refusalsBroker) RecentRefusals() []mqtt.Refusal { return r.list }

func TestRefusalsMapping(t *testing.T) {
	e := startEnv(t, envOptions{})
	when := time.Date(2026, 12, 7, 10, 0, 0, 0, time.FixedZone("x", 3600))
	a := &API{Broker: refusalsBroker{Broker: e.b, list: []mqtt.Refusal{{
		Time: when, ClientID: "m1", Username: "mallory", RemoteAddr: "127.0.0.1:5", Listener: "tcp",
		Protocol: 5, ReasonCode: 0x86, Reason: "bad user name or password", Plugin: "accounts",
	}}}}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/refusals")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got adminapi.RefusalList
	json.NewDecoder(resp.Body).Decode(&got)
	want := adminapi.Refusal{Time: when.UTC(), ClientID: "m1", Username: "mallory", RemoteAddr: "127.0.0.1:5", Listener: "tcp",
		Protocol: 5, ReasonCode: 0x86, Reason: "bad user name or password", Plugin: "accounts"}
	if len(got.Items) != 1 || got.Items[0] != want {
		t.Fatalf("refusals = %+v, want %+v", got, want)
	}
}
