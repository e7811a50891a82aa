package webhook

import (
	"context"
	"strings"
	"testing"
)

// A plugin that answers GET /manifest with 401 or 403 has refused the
// request's signature: the message says to check the secret, not that 401
// is not a decision.
func TestManifestRefusedNamesTheSecret(t *testing.T) {
	for _, status := range []int{401, 403} {
		f := newFake(t)
		f.handle("/manifest", answer(status, `{"error":"bad signature"}`))
		p := newPlugin(t, f.url(), nil)
		err := p.askManifest(context.Background())
		if err == nil || !strings.Contains(err.Error(), "the alias's secret must be the one the plugin checks signatures with") ||
			strings.Contains(err.Error(), "not a decision") {
			t.Errorf("manifest %d: %v", status, err)
		}
	}
}
