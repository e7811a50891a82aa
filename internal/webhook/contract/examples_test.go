package contract

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mqttd/mqttd/api"
)

// TestSpecExamplesPass sends the spec's own examples through the Validator.
// The spec lint already checks them against the schemas; this adds the
// Validator's strictness (no unknown fields, padded standard base64), so
// an example a plugin author copies is exactly what the broker sends.
func TestSpecExamplesPass(t *testing.T) {
	v := newValidator(t)
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if rb := op.RequestBody; rb != nil {
				r, b := request(t, method, path, rb.Value.Content["application/json"].Example)
				if err := v.Request(r, b); err != nil {
					t.Errorf("request example: %v", err)
				}
			}
			for status, resp := range op.Responses.Map() {
				mt := resp.Value.Content["application/json"]
				code, err := strconv.Atoi(status)
				if mt == nil || err != nil {
					continue
				}
				r, _ := request(t, method, path, nil)
				body := marshal(t, mt.Example)
				if err := v.Response(r, code, http.Header{"Content-Type": {"application/json"}}, body); err != nil {
					t.Errorf("answer example: %v", err)
				}
			}
		}
	}
	// Every event and packet schema's example, each in a batch of its own.
	n := 0
	for name, s := range doc.Components.Schemas {
		var event any
		switch {
		case strings.HasSuffix(name, "Event") && name != "Event":
			event = s.Value.Example
		case strings.HasSuffix(name, "Packet") && name != "Packet":
			event = map[string]any{"id": "e", "seq": 1, "time": "2025-03-01T10:00:00Z", "broker": "n",
				"type": "mqtt_packet_received", "client_id": "c", "packet": s.Value.Example}
		default:
			continue
		}
		n++
		r, b := request(t, "POST", "/events", map[string]any{"events": []any{event}})
		if err := v.Request(r, b); err != nil {
			t.Errorf("example of %s: %v", name, err)
		}
	}
	if n != 13+15 {
		t.Errorf("checked %d event and packet examples, want 13 events and 15 packets", n)
	}
}
