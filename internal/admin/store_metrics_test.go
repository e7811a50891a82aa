package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// Publishes refused because the store failed are a counter of their own:
// the operator's sign that the disk is full or failing.
func TestStoreRefusedMetric(t *testing.T) {
	h := NewHandler(&fakeSource{stats: mqtt.Stats{StoreRefused: 12}}, func() error { return nil }, nil)
	code, body, _ := get(t, h, http.MethodGet, "/metrics")
	want := "# TYPE mqttd_store_publishes_refused_total counter\nmqttd_store_publishes_refused_total 12\n"
	if code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("metrics = %d, lacks %q", code, want)
	}
}
