// Package aclfile is the acl-file built-in plugin: topic_filtering from a
// file of access rules, like Mosquitto's acl_file. A rule names who it is
// about (a user, a client id, clients without a user name, or everyone),
// a topic filter with MQTT's + and # (and %u / %c for the client's user
// name and client id), the actions it covers (subscribe, publish,
// receive), and whether it allows or denies them.
//
// The file is YAML when its name ends in .yaml or .yml (see parseYAML) and
// Mosquitto's format otherwise (see parseMosquitto). Either way:
//
//   - a deny that matches the request denies it; else a grant that matches
//     allows it; else the plugin ignores it, and the chain's
//     topic-check.default decides;
//   - a subscription is denied only by a deny that covers every topic the
//     filter can match ("sensors/#" covers "sensors/+/temp", not the other
//     way round), and allowed by a grant that allows at least one of them;
//     a deny on part of the filter is enforced on each delivery by the
//     receive rules instead, as in Mosquitto (a deny for subscribe alone
//     refuses the filters it covers and filters no delivery: deny receive,
//     or read, to keep messages from a client); $share/GROUP/ is stripped
//     first, so shared subscriptions are checked by their filter;
//   - %u or %c whose value is unusable (contains + # / or starts with $)
//     never grants, and a deny using it matches everything, so a client
//     cannot widen its access by choosing an odd client id; rules using %u
//     do not apply to clients without a user name.
package aclfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// Options configures a Plugin.
type Options struct {
	// File is the ACL file: YAML if it ends in .yaml or .yml, else
	// Mosquitto's acl_file format.
	File string
}

// Plugin is an acl-file plugin. It implements hooks.TopicFilter.
type Plugin struct {
	file  string
	rules atomic.Pointer[ruleSet]
}

var _ hooks.TopicFilter = (*Plugin)(nil)

// New loads o.File.
func New(o Options) (*Plugin, error) {
	if o.File == "" {
		return nil, errors.New("acl-file: no file given (set file: PATH, a .yaml file or one in Mosquitto's acl_file format)")
	}
	p := &Plugin{file: o.File}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the file again and applies it: Prepare, then its commit.
// Checks from then on use the new rules; connections and granted
// subscriptions stay (receive checks apply the new rules to each message).
// On error the rules loaded before stay in force and the error names the
// file and line to fix.
func (p *Plugin) Reload() error {
	commit, err := p.Prepare()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare reads and parses the file without applying it; commit applies
// the new rules, at once. A reload of several plugins prepares them all
// first and commits only when none failed, so a failed reload changes
// nothing. On error nothing is pending and the error names the file and
// line to fix.
func (p *Plugin) Prepare() (commit func(), err error) {
	data, err := os.ReadFile(p.file)
	if err != nil {
		return nil, fmt.Errorf("acl-file: %w", err)
	}
	parse := parseMosquitto
	if ext := strings.ToLower(filepath.Ext(p.file)); ext == ".yaml" || ext == ".yml" {
		parse = parseYAML
	}
	rs, err := parse(p.file, data)
	if err != nil {
		return nil, fmt.Errorf("acl-file: %w", err)
	}
	return func() { p.rules.Store(rs) }, nil
}

// Rules is the number of rules loaded.
func (p *Plugin) Rules() int { return p.rules.Load().n }

// FilterTopic implements hooks.TopicFilter. It never fails and never
// waits.
func (p *Plugin) FilterTopic(_ context.Context, c *mqtt.ClientInfo, req mqtt.TopicRequest) (hooks.Decision, error) {
	return p.rules.Load().check(c, req), nil
}

// FilterTopicNow implements hooks.TopicFilterNow: the rules are in memory,
// so every answer is at hand and the broker can deliver in line.
func (p *Plugin) FilterTopicNow(c *mqtt.ClientInfo, req mqtt.TopicRequest) (hooks.Decision, bool) {
	return p.rules.Load().check(c, req), true
}
