package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPluginsLoad(t *testing.T) {
	isolate(t)
	t.Setenv("HOOKS_SECRET", "s3cret")
	t.Setenv("MQTTD_PLUGINS_ACCOUNTS_TIMEOUT", "250ms")
	t.Setenv("MQTTD_TOPIC_CHECK_PLUGINS", "accounts, acl")
	dir := t.TempDir()
	path := writeFile(t, dir, "mqttd.yaml", `
plugins:
  accounts:
    url: http://hooks:3000
    secret: ${HOOKS_SECRET}
    events: [broker_client_connected]
    config: {realm: factory-7}
    cache: {ttl: 5s}
  acl:
    type: acl-file
    file: acl.yaml
auth:
  allow-anonymous: false
  plugins: [accounts]
topic-check:
  enable: true
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	acc := c.Plugins["accounts"]
	def := defaultPlugin()
	if acc.Type != PluginHTTP || acc.Secret != "s3cret" || acc.Timeout != 250*time.Millisecond {
		t.Errorf("accounts = type %q secret %q timeout %s, want http, the expanded secret, 250ms from the environment", acc.Type, acc.Secret, acc.Timeout)
	}
	if acc.Cache.TTL != 5*time.Second || acc.Cache.DenyTTL != def.Cache.DenyTTL || acc.Breaker != def.Breaker || acc.Queue != def.Queue {
		t.Errorf("accounts cache %+v breaker %+v queue %+v: want ttl 5s and every other key at its default", acc.Cache, acc.Breaker, acc.Queue)
	}
	if !reflect.DeepEqual(acc.Config, map[string]any{"realm": "factory-7"}) || !reflect.DeepEqual(acc.Events, []string{"broker_client_connected"}) {
		t.Errorf("accounts config %v events %v", acc.Config, acc.Events)
	}
	if got := c.Plugins["acl"].File; got != filepath.Join(dir, "acl.yaml") {
		t.Errorf("acl file = %q, want it resolved against the config directory", got)
	}
	if c.Auth.AllowAnonymous || c.Auth.Mode != "all" || !reflect.DeepEqual(c.Auth.Plugins, []string{"accounts"}) {
		t.Errorf("auth = %+v", c.Auth)
	}
	if !c.TopicCheck.Enable || c.TopicCheck.Default != "deny" || !reflect.DeepEqual(c.TopicCheck.Plugins, []string{"accounts", "acl"}) {
		t.Errorf("topic-check = %+v, want plugins from the environment list", c.TopicCheck)
	}
	var out strings.Builder
	if err := c.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "secret: '********'") {
		t.Errorf("printed configuration shows the secret:\n%s", out.String())
	}
	if strings.Contains(out.String(), "acl-file\n    timeout: 1s\n    on-error: deny\n    file") == false {
		t.Errorf("an acl-file plugin should print without HTTP keys:\n%s", out.String())
	}
}

func TestDefaultsHaveNoPlugins(t *testing.T) {
	isolate(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Plugins != nil || !c.Auth.AllowAnonymous || c.TopicCheck.Enable {
		t.Errorf("defaults: plugins %v auth %+v topic-check %+v; want none, anonymous allowed, no topic check", c.Plugins, c.Auth, c.TopicCheck)
	}
}

func TestPluginErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"neither url nor type", "plugins:\n  p: {timeout: 1s}\n", `plugins.p: has neither url nor type (set url: http://host:port for an HTTP plugin, or type: password-file, acl-file, event-log)`},
		{"unknown type", "plugins:\n  p: {type: lua}\n", `plugins.p.type: "lua" is not a plugin type (use http, password-file, acl-file, event-log)`},
		{"bad url", "plugins:\n  p: {url: \"hooks:3000\"}\n", `plugins.p.url: "hooks:3000" is not an http:// or https:// URL (e.g. http://hooks:3000)`},
		{"key of another type", "plugins:\n  p: {url: \"http://h:1\", file: x}\n", `plugins.p.file: does not apply to http plugins (their keys: type, timeout, on-error, events, config, url, secret,`},
		{"file missing", "plugins:\n  p: {type: acl-file}\n", `plugins.p.file: is missing (acl-file plugins read their entries from a file)`},
		{"on-error", "plugins:\n  p: {url: \"http://h:1\", on-error: retry}\n", `plugins.p.on-error: "retry" is not a policy (use deny, allow, ignore or stale)`},
		{"event name", "plugins:\n  p: {url: \"http://h:1\", events: [on_broker_pre_start]}\n", `plugins.p.events: "on_broker_pre_start" is not an event (use broker_pre_start, broker_post_start,`},
		{"timeout", "plugins:\n  p: {url: \"http://h:1\", timeout: 0s}\n", `plugins.p.timeout: 0s must be positive (e.g. 500ms)`},
		{"jitter", "plugins:\n  p: {url: \"http://h:1\", cache: {jitter: 2}}\n", `plugins.p.cache.jitter: 2 is out of range (use a fraction from 0 to 1, e.g. 0.1)`},
		{"queue bytes", "plugins:\n  p: {url: \"http://h:1\", queue: {size-bytes: 0}}\n", `plugins.p.queue.size-bytes: 0 is out of range (use at least 1, e.g. 64MiB)`},
		{"unknown cache key", "plugins:\n  p: {url: \"http://h:1\", cache: {tll: 1s}}\n", `unknown key "plugins.p.cache.tll" (did you mean "plugins.p.cache.ttl"?`},
		{"tls half", "plugins:\n  p: {url: \"https://h:1\", tls: {cert: c.pem}}\n", `plugins.p.tls: cert and key go together (set both, or neither)`},
		{"auth alias", "plugins:\n  a: {url: \"http://h:1\"}\nauth: {plugins: [b]}\n", `auth.plugins: "b" is not a plugin alias (defined: a)`},
		{"topic alias twice", "plugins:\n  a: {url: \"http://h:1\"}\ntopic-check: {plugins: [a, a]}\n", `topic-check.plugins: "a" is listed twice`},
		{"no plugins at all", "auth: {plugins: [x]}\n", `auth.plugins: "x" is not a plugin alias (defined: none)`},
		{"auth mode", "auth: {mode: any}\n", `auth.mode: "any" is not a mode (use all or first)`},
		{"topic default", "topic-check: {default: ignore}\n", `topic-check.default: "ignore" is not a decision (use allow or deny)`},
		{"deny-publish", "topic-check: {deny-publish: close}\n", `topic-check.deny-publish: "close" is not a policy (use drop or disconnect)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			path := writeFile(t, t.TempDir(), "mqttd.yaml", tc.content)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

func TestRestartNeeded(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	a, err := Load(writeFile(t, dir, "a.yaml", "limits: {max-inflight: 8}\nauth: {allow-anonymous: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(writeFile(t, dir, "b.yaml", "limits: {max-inflight: 9}\nauth: {allow-anonymous: false}\nplugins:\n  p: {url: \"http://h:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.RestartNeeded(b); !reflect.DeepEqual(got, []string{"limits"}) {
		t.Errorf("RestartNeeded = %v, want [limits] (plugins and auth reload)", got)
	}
	if got := a.RestartNeeded(a); got != nil {
		t.Errorf("RestartNeeded(same) = %v, want none", got)
	}
}
