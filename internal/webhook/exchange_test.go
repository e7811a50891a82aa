package webhook

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

// tokenPlugin is an HTTP plugin with a two-step challenge for the method
// TOKEN: "hello" → continue "challenge-<n>"; "answer-<n>" for the same
// exchange_id → allow with "welcome"; anything else → deny. It answers
// cache_ttl 300 to every step, which the broker must not honour.
type tokenPlugin struct {
	mu        sync.Mutex
	pending   map[string]string // exchange_id → the answer expected
	steps     []exchangeSeen
	n         int
	plainSeen int
}

type exchangeSeen struct {
	ID     string `json:"exchange_id"`
	Step   int    `json:"exchange_step"`
	Method string `json:"auth_method"`
	Data   []byte `json:"auth_data"`
	Reauth bool   `json:"reauthenticate"`
	Client string `json:"client_id"`
}

func (p *tokenPlugin) serve(w http.ResponseWriter, r *http.Request) {
	var s exchangeSeen
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		panic(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	reply := func(v map[string]any) {
		v["cache_ttl"] = 300
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	if s.Method == "" {
		p.plainSeen++
		reply(map[string]any{"result": "allow"})
		return
	}
	p.steps = append(p.steps, s)
	if s.Method != "TOKEN" {
		reply(map[string]any{"result": "ignore"})
		return
	}
	switch want, ok := p.pending[s.ID]; {
	case s.Step == 1 && string(s.Data) == "hello":
		p.n++
		challenge := []byte("challenge-" + string(rune('0'+p.n)))
		p.pending[s.ID] = "answer-" + string(rune('0'+p.n))
		reply(map[string]any{"result": "continue", "auth_data": challenge})
	case ok && s.Step > 1 && string(s.Data) == want:
		delete(p.pending, s.ID)
		reply(map[string]any{"result": "allow", "auth_data": []byte("welcome")})
	default:
		reply(map[string]any{"result": "deny", "reason_code": 135, "reason": "wrong answer"})
	}
}

func (p *tokenPlugin) seen() []exchangeSeen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]exchangeSeen(nil), p.steps...)
}

// tokenAuther answers challenge-<n> with answer-<n> (or with wrong when set).
type tokenAuther struct{ wrong string }

func (a *tokenAuther) Authenticate(in *pahov5.Auth) *pahov5.Auth {
	d := string(in.Properties.AuthData)
	answer := "answer-" + d[len(d)-1:]
	if a.wrong != "" {
		answer = a.wrong
	}
	return &pahov5.Auth{ReasonCode: 0x18, Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte(answer)}}
}

func (a *tokenAuther) Authenticated() {}

// exchangeBroker runs a broker whose only auth plugin is an HTTP plugin
// served by tp, with rl as the auth rate limit.
func exchangeBroker(t *testing.T, tp *tokenPlugin, rl hooks.RateLimitOptions) string {
	t.Helper()
	f := newFake(t)
	f.handle("/authenticate", tp.serve)
	p := newPlugin(t, f.url(), nil)
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{p.Alias(): {Plugin: p, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{p.Alias()}, RateLimit: rl},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	return addr
}

// connectToken connects an MQTT 5 client with the method TOKEN.
func connectToken(t *testing.T, addr, id, first string, a pahov5.Auther) (*pahov5.Client, *pahov5.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound, AuthHandler: a})
	cp := &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &pahov5.ConnectProperties{AuthMethod: "TOKEN", AuthData: []byte(first), RequestProblemInfo: true}}
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

// Enhanced authentication over HTTP with a real MQTT 5 client: the
// plugin's continue becomes AUTH 0x18, the client's answer comes back to
// the plugin under the same exchange_id, and the final allow's auth_data
// reaches CONNACK. No step is ever answered from the cache, though the
// plugin allows reuse; a second connection gets its own exchange_id; a
// wrong answer is refused; re-authentication runs the same way.
func TestExchangeOverHTTP(t *testing.T) {
	tp := &tokenPlugin{pending: map[string]string{}}
	addr := exchangeBroker(t, tp, hooks.RateLimitOptions{})

	c, ack, err := connectToken(t, addr, "ex-1", "hello", &tokenAuther{})
	if err != nil {
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	if ack.Properties.AuthMethod != "TOKEN" || string(ack.Properties.AuthData) != "welcome" {
		t.Fatalf("CONNACK method %q data %q; plugin saw %+v", ack.Properties.AuthMethod, ack.Properties.AuthData, tp.seen())
	}
	s := tp.seen()
	if len(s) != 2 || s[0].ID == "" || s[1].ID != s[0].ID || s[0].Step != 1 || s[1].Step != 2 ||
		string(s[0].Data) != "hello" || string(s[1].Data) != "answer-1" || s[0].Reauth || s[0].Client != "ex-1" {
		t.Fatalf("steps seen by the plugin: %+v", s)
	}

	// The same first step again: asked, not served from the cache, with
	// a new exchange_id.
	if _, _, err := connectToken(t, addr, "ex-2", "hello", &tokenAuther{}); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	s = tp.seen()
	if len(s) != 4 || s[2].ID == s[0].ID || s[3].ID != s[2].ID {
		t.Fatalf("second exchange: %+v", s)
	}

	// A wrong answer: CONNACK 0x87 with the plugin's reason.
	if _, ack, err := connectToken(t, addr, "ex-3", "hello", &tokenAuther{wrong: "guess"}); err == nil || ack == nil || ack.ReasonCode != 0x87 {
		t.Fatalf("wrong answer: err %v ack %+v, want CONNACK 0x87", err, ack)
	}

	// Re-authentication: AUTH 0x19 → continue → allow (AUTH 0x00).
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := c.Authenticate(ctx, &pahov5.Auth{ReasonCode: 0x19,
		Properties: &pahov5.AuthProperties{AuthMethod: "TOKEN", AuthData: []byte("hello")}})
	if err != nil || !resp.Success {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	s = tp.seen()
	last := s[len(s)-2:]
	if !last[0].Reauth || !last[1].Reauth || last[0].ID != last[1].ID || last[0].ID == s[0].ID || last[0].Step != 1 {
		t.Fatalf("re-authentication steps: %+v", last)
	}
	tp.mu.Lock()
	plain := tp.plainSeen
	tp.mu.Unlock()
	if plain != 0 {
		t.Fatalf("%d plain authenticate requests, want 0", plain)
	}
}

// A method no plugin knows (every one ignores it) is refused with 0x8C,
// although allow-anonymous would let a client without credentials in.
func TestExchangeUnknownMethod(t *testing.T) {
	tp := &tokenPlugin{pending: map[string]string{}}
	addr := exchangeBroker(t, tp, hooks.RateLimitOptions{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: "ex-other", CleanStart: true,
		Properties: &pahov5.ConnectProperties{AuthMethod: "SCRAM-SHA-512"}})
	if err == nil || ack == nil || ack.ReasonCode != 0x8C {
		t.Fatalf("unknown method: err %v ack %+v, want CONNACK 0x8C", err, ack)
	}
}

// A client that floods exchanges with wrong answers meets the auth rate
// limit: once its failures are spent, its next exchange is refused with
// 0x97 before the plugin is asked.
func TestExchangeRateLimited(t *testing.T) {
	tp := &tokenPlugin{pending: map[string]string{}}
	addr := exchangeBroker(t, tp, hooks.RateLimitOptions{FailuresPerSecond: 0.001, Burst: 3, MaxPending: 10})
	for i := range 3 {
		if _, ack, _ := connectToken(t, addr, "flood", "hello", &tokenAuther{wrong: "guess"}); ack == nil || ack.ReasonCode != 0x87 {
			t.Fatalf("attempt %d: CONNACK %+v, want 0x87", i, ack)
		}
	}
	asked := len(tp.seen())
	if _, ack, _ := connectToken(t, addr, "flood", "hello", &tokenAuther{}); ack == nil || ack.ReasonCode != 0x97 {
		t.Fatalf("after the burst: CONNACK %+v, want 0x97", ack)
	}
	if n := len(tp.seen()); n != asked {
		t.Fatalf("the plugin was asked %d more times after the limit", n-asked)
	}
}

// continue is no answer to a plain authenticate or a topic check: it is a
// bad answer, so the on-error policy (deny) decides.
func TestContinueOutsideExchange(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(200, `{"result":"continue","auth_data":"eA=="}`))
	f.handle("/topic_filtering", answer(200, `{"result":"continue"}`))
	p := newPlugin(t, f.url(), nil)
	if _, err := auth(p, mqttClient("c", "u"), "pw"); kindOf(err) != KindBadAnswer {
		t.Fatalf("authenticate: err %v, want a bad answer", err)
	}
	if _, err := p.FilterTopic(context.Background(), mqttClient("c", "u"), publish); kindOf(err) != KindBadAnswer {
		t.Fatalf("topic_filtering: err %v, want a bad answer", err)
	}
}

// A plain CONNECT's authenticate body carries none of the
// enhanced-authentication fields: a plugin written for the first edition
// sees what it always saw.
func TestPlainAuthenticateBodyUnchanged(t *testing.T) {
	body, err := authBody(&hooks.AuthRequest{Client: mqttClient("c", "u"), Password: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"auth_method", "auth_data", "exchange_id", "exchange_step", "reauthenticate"} {
		if _, ok := m[k]; ok {
			t.Errorf("a plain authenticate body has %q: %s", k, body)
		}
	}
}
