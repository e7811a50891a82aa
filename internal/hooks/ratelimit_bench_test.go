package hooks

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// BenchmarkAuthenticateRateLimit is the cost of auth.rate-limit on the
// connect path: one good login through the auth chain with an in-process
// plugin that allows at once (the cheapest decision, so the limiter's share
// is at its largest), from 1024 source addresses in turn, with the limit
// off and on (the defaults). Compare the two ns/op.
func BenchmarkAuthenticateRateLimit(b *testing.B) {
	clients := make([]*mqtt.ClientInfo, 1024)
	for i := range clients {
		clients[i] = &mqtt.ClientInfo{ClientID: fmt.Sprint("c", i), RemoteAddr: fmt.Sprintf("10.0.%d.%d:40000", i>>8, i&255), ProtocolVersion: 5}
	}
	allow := authFunc(func(context.Context, *AuthRequest) (Decision, error) { return Decision{Result: Allow}, nil })
	for _, bc := range []struct {
		name string
		rl   RateLimitOptions
	}{
		{"off", RateLimitOptions{}},
		{"on", RateLimitOptions{FailuresPerSecond: 1, Burst: 10, MaxPending: 10}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := mustNew(b, Options{Plugins: map[string]PluginSpec{"accounts": {Plugin: allow}},
				Auth: AuthOptions{Plugins: []string{"accounts"}, RateLimit: bc.rl}})
			a := m.Hooks().Auth
			ctx := context.Background()
			pw := []byte("pw")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !a.Authenticate(ctx, clients[i&1023], pw).Allow {
					b.Fatal("refused")
				}
				i++
			}
		})
	}
}
