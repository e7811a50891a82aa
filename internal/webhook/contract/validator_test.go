package contract

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/webhook/wire"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// request builds a plugin request as the broker sends it: JSON body and the
// protocol headers.
func request(t *testing.T, method, path string, body any) (*http.Request, []byte) {
	t.Helper()
	var b []byte
	if body != nil {
		b = marshal(t, body)
	}
	r := httptest.NewRequest(method, "http://plugin.test"+path, bytes.NewReader(b))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("X-Mqttd-Plugin", "accounts")
	r.Header.Set("X-Mqttd-Request-Id", "req-1")
	return r, b
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func authRequest() wire.AuthenticateRequest {
	pw := "secret"
	return wire.AuthenticateRequest{
		ClientID: "c1", Username: "alice", Password: &pw, RemoteAddr: "127.0.0.1:5000", Listener: "default",
		Transport: wire.TransportTLS, ProtocolVersion: wire.ProtocolVersionMQTT5, CleanStart: true, KeepAlive: 60,
		TLS: &wire.ClientCertificate{Subject: "CN=c1", Issuer: "CN=ca", Serial: "1f", DNSNames: []string{"c1.test"},
			FingerprintSha256: strings.Repeat("ab", 32)},
		UserProperties: []wire.UserProperty{{Key: "k", Value: "v"}},
	}
}

func topicRequest() wire.TopicFilteringRequest {
	return wire.TopicFilteringRequest{ClientID: "c1", Username: "alice", Topic: "a/b",
		Action: wire.TopicFilteringRequestActionPublish, QOS: 1}
}

func TestValidRequests(t *testing.T) {
	v := newValidator(t)
	binary := authRequest()
	binary.Password, binary.PasswordBase64, binary.TLS, binary.UserProperties = nil, []byte{0xff, 0}, nil, nil
	cases := map[string]struct {
		method, path string
		body         any
	}{
		"authenticate":             {"POST", "/authenticate", authRequest()},
		"authenticate binary pw":   {"POST", "/authenticate", binary},
		"topic_filtering":          {"POST", "/topic_filtering", topicRequest()},
		"manifest":                 {"GET", "/manifest", nil},
		"events, every type":       {"POST", "/events", wire.EventBatch{Events: allEvents(t)}},
		"under a path prefix":      {"POST", "/plugins/v1/authenticate", authRequest()},
		"prefix named like a path": {"POST", "/events/events", wire.EventBatch{Events: allEvents(t)[:1]}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, b := request(t, c.method, c.path, c.body)
			if err := v.Request(r, b); err != nil {
				t.Fatalf("valid request rejected: %v\nbody: %s", err, b)
			}
		})
	}
}

// TestEveryPacketType sends each packet type inside an mqtt_packet_sent
// event, since allEvents only carries two of them.
func TestEveryPacketType(t *testing.T) {
	v := newValidator(t)
	for _, p := range allPackets(t) {
		kind, _ := p.Discriminator()
		t.Run(kind, func(t *testing.T) {
			var e wire.Event
			mustUnion(t, e.FromMQTTPacketSentEvent(wire.MQTTPacketSentEvent{ID: "e", Seq: 1, Time: when, Broker: "n",
				ClientID: "c1", Packet: p}))
			r, b := request(t, "POST", "/events", wire.EventBatch{Events: []wire.Event{e}})
			if err := v.Request(r, b); err != nil {
				t.Fatalf("%v\nbody: %s", err, b)
			}
		})
	}
}

// event returns the i-th event of allEvents as a JSON object to break.
func event(t *testing.T, i int) map[string]any {
	return asMap(t, allEvents(t)[i])
}

func TestInvalidRequests(t *testing.T) {
	v := newValidator(t)
	batch := func(events ...map[string]any) map[string]any {
		return map[string]any{"events": append([]map[string]any{}, events...)}
	}
	withEvent := func(i int, edit func(map[string]any)) map[string]any {
		e := event(t, i)
		edit(e)
		return batch(e)
	}
	withAuth := func(edit func(map[string]any)) map[string]any {
		m := asMap(t, authRequest())
		edit(m)
		return m
	}
	cases := map[string]struct {
		path string
		body any
		want string // a fragment of the error
	}{
		"missing client_id": {"/authenticate", withAuth(func(m map[string]any) { delete(m, "client_id") }), "client_id"},
		"wrong transport enum": {"/authenticate",
			withAuth(func(m map[string]any) { m["transport"] = "udp" }), `"/transport": value is not one of`},
		"protocol version 6": {"/authenticate",
			withAuth(func(m map[string]any) { m["protocol_version"] = 6 }), "protocol_version"},
		"bad base64 password": {"/authenticate",
			withAuth(func(m map[string]any) { delete(m, "password"); m["password_base64"] = "abc" }), "password_base64"},
		"unknown field": {"/authenticate",
			withAuth(func(m map[string]any) { m["clientId"] = "c1" }), "clientId"},
		"fingerprint not hex": {"/authenticate",
			withAuth(func(m map[string]any) { m["tls"].(map[string]any)["fingerprint_sha256"] = "AB:CD" }), "fingerprint_sha256"},
		"wrong action": {"/topic_filtering", func() any {
			m := asMap(t, topicRequest())
			m["action"] = "read"
			return m
		}(), `"/action": value is not one of`},
		"qos 3": {"/topic_filtering", func() any {
			m := asMap(t, topicRequest())
			m["qos"] = 3
			return m
		}(), "qos"},
		"no events":          {"/events", batch(), "events"},
		"unknown event type": {"/events", withEvent(1, func(e map[string]any) { e["type"] = "broker_exploded" }), `"type" has invalid value`},
		"event missing seq":  {"/events", withEvent(4, func(e map[string]any) { delete(e, "seq") }), "seq"},
		"event time not UTC": {"/events",
			withEvent(1, func(e map[string]any) { e["time"] = "2025-03-01T12:15:30.5+02:00" }), "time"},
		"connected without session": {"/events", withEvent(4, func(e map[string]any) { delete(e, "session") }), "session"},
		"pre_start config null":     {"/events", withEvent(0, func(e map[string]any) { e["config"] = nil }), "config"},
		"bad base64 payload": {"/events", withEvent(8, func(e map[string]any) {
			e["message"].(map[string]any)["payload"] = "not base64!"
		}), "payload"},
		"session field misspelt": {"/events", withEvent(5, func(e map[string]any) {
			s := e["session"].(map[string]any)
			s["keepalive"] = s["keep_alive"]
			delete(s, "keep_alive")
		}), "keep"},
		"connect packet with password": {"/events", withEvent(11, func(e map[string]any) {
			e["packet"].(map[string]any)["password"] = "secret"
		}), "password"},
		"unknown packet type": {"/events", withEvent(12, func(e map[string]any) {
			e["packet"].(map[string]any)["packet_type"] = "connack2"
		}), `"packet_type" has invalid value`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, b := request(t, "POST", c.path, c.body)
			err := v.Request(r, b)
			if err == nil {
				t.Fatalf("invalid request accepted: %s", b)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not name %q: %v", c.want, err)
			}
		})
	}
}

func TestInvalidRequestLine(t *testing.T) {
	v := newValidator(t)
	cases := map[string]func(t *testing.T) (*http.Request, []byte){
		"unknown path": func(t *testing.T) (*http.Request, []byte) {
			return request(t, "POST", "/authorize", authRequest())
		},
		"segment merely ending like a path": func(t *testing.T) (*http.Request, []byte) {
			return request(t, "POST", "/myevents", wire.EventBatch{Events: allEvents(t)})
		},
		"wrong method": func(t *testing.T) (*http.Request, []byte) {
			return request(t, "GET", "/authenticate", nil)
		},
		"no plugin header": func(t *testing.T) (*http.Request, []byte) {
			r, b := request(t, "POST", "/authenticate", authRequest())
			r.Header.Del("X-Mqttd-Plugin")
			return r, b
		},
		"malformed signature": func(t *testing.T) (*http.Request, []byte) {
			r, b := request(t, "POST", "/authenticate", authRequest())
			r.Header.Set("X-Mqttd-Signature", "sha256=abc")
			return r, b
		},
		"not JSON": func(t *testing.T) (*http.Request, []byte) {
			r, _ := request(t, "POST", "/topic_filtering", topicRequest())
			return r, []byte("client_id=c1")
		},
		"no content type": func(t *testing.T) (*http.Request, []byte) {
			r, b := request(t, "POST", "/topic_filtering", topicRequest())
			r.Header.Del("Content-Type")
			return r, b
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			r, b := build(t)
			if err := v.Request(r, b); err == nil {
				t.Fatalf("accepted %s %s", r.Method, r.URL.Path)
			}
		})
	}
	// The same request with a well-formed signature passes: the failure
	// above is the signature's format, not its presence.
	r, b := request(t, "POST", "/authenticate", authRequest())
	r.Header.Set("X-Mqttd-Signature", "t=1740824130,v2="+strings.Repeat("0f", 32))
	if err := v.Request(r, b); err != nil {
		t.Fatal(err)
	}
}

func TestResponses(t *testing.T) {
	v := newValidator(t)
	json := http.Header{"Content-Type": {"application/json"}}
	cases := []struct {
		path   string
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"/authenticate", 200, json, `{"result":"deny","reason":"no","reason_code":135,"cache_ttl":0}`, true},
		{"/authenticate", 204, nil, ``, true},
		{"/authenticate", 403, nil, ``, true},
		{"/topic_filtering", 200, json, `{"result":"ignore"}`, true},
		{"/topic_filtering", 200, json, `{"result":"maybe"}`, false},
		{"/topic_filtering", 200, json, `{"result":"allow","reason_code":256}`, false},
		{"/topic_filtering", 200, json, `{"result":"allow","cache_ttl":-1}`, false},
		{"/authenticate", 200, json, `{"reason":"no result"}`, false},
		{"/manifest", 200, json, `{"name":"p","version":"1","authenticate":true,"topic_filtering":false,"events":["broker_post_start"]}`, true},
		{"/manifest", 200, json, `{"name":"p","version":"1","authenticate":true,"topic_filtering":false,"events":["on_connect"]}`, false},
		{"/manifest", 404, nil, ``, true},
		{"/manifest", 200, json, `{"name":"p","version":"1"}`, false},
		{"/manifest", 503, nil, ``, true},
		{"/events", 202, nil, ``, true},
		{"/events", 503, nil, ``, true},
	}
	for _, c := range cases {
		method := "POST"
		if c.path == "/manifest" {
			method = "GET"
		}
		r, _ := request(t, method, c.path, nil)
		err := v.Response(r, c.status, c.header, []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s %d %s: ok=%v, got %v", c.path, c.status, c.body, c.ok, err)
		}
	}
}
