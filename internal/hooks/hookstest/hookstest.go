// Package hookstest holds helpers for tests that run plugins through a
// real broker. It is imported only from _test.go files.
//
// It does not import internal/hooks: that package's own tests are internal
// (package hooks), and they could not import a package that imports hooks
// without an import cycle. *hooks.Manager satisfies Plugins.
package hookstest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// closeTimeout bounds closing the broker and the plugins: a failure bound,
// never a measurement.
const closeTimeout = 10 * time.Second

// Plugins is what a broker's life needs of a hooks.Manager: its hooks, a
// Start before the broker starts, and a Close after the broker closed.
type Plugins interface {
	Hooks() mqtt.Hooks           // given to the broker's Options
	Start(context.Context) error // before the broker starts: each plugin's own Start
	Close(context.Context) error // after the broker closed, so its last events arrive
}

// Serve starts p, then a broker with p's hooks and one TCP listener on
// 127.0.0.1, and returns the broker and the listener's address. $SYS is off
// so that only the test's own traffic reaches the plugins. Cleanup stops
// both (see Stop), so a test needs Stop only to end them early.
func Serve(t testing.TB, p Plugins) (*mqtt.Broker, string) {
	t.Helper()
	b, err := mqtt.New(mqtt.Options{Name: "test", SysInterval: -1, Hooks: p.Hooks(),
		Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(t, b, p) })
	return b, b.Addr("t").String()
}

// Stop closes b and then p, the order cmd/mqttd uses, so the broker's last
// events (broker_post_shutdown) reach the plugins before they close. An
// error from p's Close fails the test; a second Stop does nothing more.
func Stop(t testing.TB, b *mqtt.Broker, p Plugins) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	b.Close(ctx) // unchecked: a second Stop gets "already closed"
	if err := p.Close(ctx); err != nil {
		t.Errorf("closing plugins: %v", err)
	}
}

// WriteFile writes data to a file named name in a fresh directory and
// returns its path: the password and ACL files the file-based plugins
// load.
func WriteFile(t testing.TB, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
