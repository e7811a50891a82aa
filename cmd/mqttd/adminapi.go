package main

import (
	"github.com/mqttd/mqttd/internal/admin"
	"github.com/mqttd/mqttd/internal/cluster"
	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// adminInfo lists the plugins for the admin API: each alias, its type and
// capabilities (an HTTP plugin's from its manifest, once it has answered
// with one; a built-in's from what it implements).
func (ps *plugins) adminInfo() []admin.PluginInfo {
	var out []admin.PluginInfo
	for _, alias := range sortedAliases(ps.built) {
		p := ps.built[alias]
		info := admin.PluginInfo{Alias: alias, Type: ps.conf[alias].Type, Capabilities: []string{}}
		if w, ok := p.(*webhook.Plugin); ok {
			info.HTTP = w
			if m, ok := w.Manifest(); ok {
				info.Capabilities = capabilities(m.Authenticate, m.TopicFiltering, len(m.Events) > 0)
			}
		} else {
			_, auth := p.(hooks.AuthPlugin)
			_, topics := p.(hooks.TopicFilter)
			_, events := p.(hooks.EventPlugin)
			info.Capabilities = capabilities(auth, topics, events)
		}
		out = append(out, info)
	}
	return out
}

// listed is adminInfo for GET /plugins: every plugin, with an HTTP
// plugin's status.
func (ps *plugins) listed() []webhook.Listed {
	out := []webhook.Listed{}
	for _, info := range ps.adminInfo() {
		l := webhook.Listed{Alias: info.Alias, Type: info.Type, Capabilities: info.Capabilities}
		if info.HTTP != nil {
			st := info.HTTP.Status()
			l.Status = &st
		}
		out = append(out, l)
	}
	return out
}

func capabilities(auth, topics, events bool) []string {
	out := []string{}
	for _, c := range []struct {
		has  bool
		name string
	}{{auth, "authenticate"}, {topics, "topic_filtering"}, {events, "events"}} {
		if c.has {
			out = append(out, c.name)
		}
	}
	return out
}

// adminAPI is the REST API over b and the current plugins. A request body
// may hold a message of limits.max-packet-size in base64 (4/3 of it) with
// room for the JSON around it.
// In a cluster (node non-nil) a cache purge is passed to the other nodes.
func adminAPI(b *mqtt.Broker, cfg *config.Config, current func() *plugins, node *cluster.Node) *admin.API {
	a := &admin.API{
		Broker:  b,
		Plugins: func() []admin.PluginInfo { return current().adminInfo() },
		MaxBody: int64(cfg.Limits.MaxPacketSize)*4/3 + 64<<10,
	}
	if node != nil {
		a.PurgeOthers = node.PurgeOthers
	}
	return a
}
