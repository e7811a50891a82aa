package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// A plugin service (here an httptest server on loopback) answers POST
// /authenticate; the webhook plugin pointed at it is a hooks.AuthPlugin.
// The service allows alice with the right password for 60 s and denies
// everyone else with 0x86, so the second identical CONNECT is answered
// from the decision cache without a call.
func ExamplePlugin_Authenticate() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/authenticate" {
			http.NotFound(w, r) // never read as "ignore": the broker counts it as a failure
			return
		}
		calls.Add(1)
		var req struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if req.Username == "alice" && req.Password == "wonderland" {
			fmt.Fprint(w, `{"result":"allow","cache_ttl":60}`)
			return
		}
		fmt.Fprint(w, `{"result":"deny","reason_code":134,"reason":"bad user name or password"}`)
	}))
	defer srv.Close()

	p, err := webhook.New(webhook.Options{
		Alias:   "accounts",
		URL:     srv.URL,
		Timeout: 5 * time.Second,
		Secret:  "example-secret", // each request carries X-Mqttd-Signature
		Cache:   webhook.DefaultCache,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(context.Background())

	ctx := context.Background()
	for _, try := range []struct{ user, password string }{
		{"alice", "wonderland"},
		{"alice", "wonderland"}, // the same fields: a cache hit
		{"alice", "guess"},
	} {
		client := &mqtt.ClientInfo{ClientID: "sensor-17", Username: try.user, RemoteAddr: "127.0.0.1:51324",
			Listener: "default", Transport: "tcp", ProtocolVersion: 5, CleanStart: true, KeepAlive: 60}
		d, err := p.Authenticate(ctx, &hooks.AuthRequest{Client: client, Password: []byte(try.password)})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s/%s: %v %#x %q (calls so far: %d)\n", try.user, try.password, d.Result, d.ReasonCode, d.Reason, calls.Load())
	}
	// Output:
	// alice/wonderland: allow 0x0 "" (calls so far: 1)
	// alice/wonderland: allow 0x0 "" (calls so far: 1)
	// alice/guess: deny 0x86 "bad user name or password" (calls so far: 2)
}
