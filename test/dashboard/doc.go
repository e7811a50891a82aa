// Package dashboard holds the dashboard's browser test against the real
// broker: the mqttd binary with an HTTP auth plugin, real MQTT clients, and
// headless Chromium driving the page at /ui/ (internal/admin/ui/uitest).
// Like the ui package's own browser test, it skips without Chromium unless
// CI is set.
//
//	go test -count=1 ./test/dashboard/
package dashboard
