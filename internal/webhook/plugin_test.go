package webhook

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
)

// The plugin provides every capability the framework can ask for.
var (
	_ hooks.AuthPlugin           = (*Plugin)(nil)
	_ hooks.TopicFilter          = (*Plugin)(nil)
	_ hooks.TopicFilterNow       = (*Plugin)(nil)
	_ hooks.EventPlugin          = (*Plugin)(nil)
	_ hooks.BorrowingEventPlugin = (*Plugin)(nil)
	_ hooks.SelfTimed            = (*Plugin)(nil)
	_ hooks.Starter              = (*Plugin)(nil)
	_ hooks.Closer               = (*Plugin)(nil)
)

func TestNewRejectsBadOptions(t *testing.T) {
	for name, edit := range map[string]func(*Options){
		"no url":           func(o *Options) { o.URL = "" },
		"not http":         func(o *Options) { o.URL = "ftp://h" },
		"no host":          func(o *Options) { o.URL = "http://" },
		"no alias":         func(o *Options) { o.Alias = "" },
		"negative cache":   func(o *Options) { o.Cache.Size = -1 },
		"cert without key": func(o *Options) { o.TLS.CertFile = "c.pem" },
		"unknown event":    func(o *Options) { o.Events = []string{"client_connected"} },
	} {
		o := testOptions("http://127.0.0.1:1")
		edit(&o)
		if p, err := New(o); err == nil {
			p.Close(context.Background())
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadyAfterADecision(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(500, ``))
	p := newPlugin(t, f.url(), nil)
	auth(p, mqttClient("c1", "alice"), "pw")
	if p.Ready() {
		t.Fatal("a 500 made the plugin ready")
	}
	f.handle("/authenticate", answer(401, ``))
	auth(p, mqttClient("c1", "alice"), "pw")
	if !p.Ready() {
		t.Fatal("a deny did not make the plugin ready")
	}
}

func TestCloseIsFinal(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	closePlugin(t, p)
	closePlugin(t, p) // again: no panic, same result
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindRefused || !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCloseCutsRunningCallsAtItsDeadline(t *testing.T) {
	f := newFake(t)
	entered := make(chan struct{})
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	p := newPlugin(t, f.url(), func(o *Options) { o.Timeout = time.Hour })
	errc := make(chan error, 1)
	go func() {
		_, err := auth(p, mqttClient("c1", "alice"), "pw")
		errc <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	p.Close(ctx)
	if err := <-errc; err == nil {
		t.Fatal("a call cut by Close succeeded")
	}
}

func TestKeyNeverHoldsThePassword(t *testing.T) {
	p := newPlugin(t, "http://127.0.0.1:1", nil)
	pw := []byte("hunter2hunter2")
	req := &hooks.AuthRequest{Client: mqttClient("c1", "alice"), Password: pw}
	key := authKey(p.keys, req)
	for i := 0; i+4 <= len(pw); i++ {
		if bytes.Contains(key[:], pw[i:i+4]) {
			t.Fatalf("the key holds %q of the password", pw[i:i+4])
		}
	}
	if authKey(p.keys, req) != key {
		t.Fatal("key not stable")
	}
}
