package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDurableQueueKeys(t *testing.T) {
	isolate(t)
	p := writeFile(t, t.TempDir(), "mqttd.yaml", `plugins:
  hooks: {type: http, url: "http://127.0.0.1:3000", queue: {durable: true, durable-max-bytes: 1MiB}}
  other: {type: http, url: "http://127.0.0.1:3001", queue: {durable: true, durable-dir: /srv/spool}}
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	q := c.Plugins["hooks"].Queue
	if !q.Durable || q.DurableMaxBytes != MiB || q.SpoolDir("hooks") != filepath.Join("data", "events", "hooks") {
		t.Errorf("hooks queue = %+v, spool dir %s", q, q.SpoolDir("hooks"))
	}
	o := c.Plugins["other"].Queue
	if o.DurableMaxBytes != 256*MiB || o.SpoolDir("other") != "/srv/spool" {
		t.Errorf("other queue = %+v, spool dir %s", o, o.SpoolDir("other"))
	}
}

func TestDurableQueueErrors(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{`plugins: {log: {type: event-log, queue: {durable: true}}}`, `plugins.log.queue.durable: is for http plugins`},
		{`plugins: {h: {type: http, url: "http://h:1", queue: {durable-max-bytes: 0}}}`, `plugins.h.queue.durable-max-bytes: 0 is out of range`},
	} {
		isolate(t)
		_, err := Load(writeFile(t, t.TempDir(), "mqttd.yaml", tc.content))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.content, err, tc.want)
		}
	}
}
