package aclfile

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// benchACL is 1000 rules shaped like a fleet: 330 users with three rules
// each (their own subtree, a read-only shared area, a deny inside their
// subtree) and ten rules for everyone, patterns with %u and %c among them.
func benchACL() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 330 {
		fmt.Fprintf(&b, "  - {user: user%d, topic: \"site/%d/user%d/#\"}\n", i, i%10, i)
		fmt.Fprintf(&b, "  - {user: user%d, topic: \"site/%d/shared/+/state\", actions: read}\n", i, i%10)
		fmt.Fprintf(&b, "  - {user: user%d, topic: \"site/%d/user%d/keys/#\", result: deny}\n", i, i%10, i)
	}
	for i := range 6 {
		fmt.Fprintf(&b, "  - {topic: \"public/%d/#\", actions: read}\n", i)
	}
	b.WriteString("  - {topic: \"inbox/%u/#\", actions: read}\n")
	b.WriteString("  - {topic: \"devices/%c/state\", actions: [publish]}\n")
	b.WriteString("  - {topic: \"$SYS/#\", result: deny}\n")
	b.WriteString("  - {topic: \"admin/#\", result: deny}\n")
	return b.String()
}

func BenchmarkFilterTopic1000Rules(b *testing.B) {
	p := load(b, "acl.yaml", benchACL())
	if p.Rules() != 1000 {
		b.Fatalf("%d rules", p.Rules())
	}
	ci := &mqtt.ClientInfo{Username: "user207", ClientID: "dev-207"}
	for _, bc := range []struct {
		name   string
		action mqtt.Action
		topic  string
		want   hooks.Result
	}{
		{"publish-own", mqtt.ActionPublish, "site/7/user207/lamp/state", hooks.Allow},
		{"receive-shared", mqtt.ActionReceive, "site/7/shared/boiler/state", hooks.Allow},
		{"publish-denied", mqtt.ActionPublish, "site/7/user207/keys/door", hooks.Deny},
		{"receive-no-rule", mqtt.ActionReceive, "site/8/user208/lamp", hooks.Ignore},
		{"publish-pattern", mqtt.ActionPublish, "devices/dev-207/state", hooks.Allow},
		{"subscribe-wildcard", mqtt.ActionSubscribe, "site/7/user207/lamp/+", hooks.Allow},
		{"subscribe-overlaps-deny", mqtt.ActionSubscribe, "site/7/user207/#", hooks.Allow},
		{"subscribe-covered-by-deny", mqtt.ActionSubscribe, "site/7/user207/keys/+", hooks.Deny},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := mqtt.TopicRequest{Action: bc.action, Topic: bc.topic}
			b.ReportAllocs()
			for b.Loop() {
				if d, _ := p.FilterTopic(context.Background(), ci, req); d.Result != bc.want {
					b.Fatalf("%v, want %v", d.Result, bc.want)
				}
			}
		})
	}
}
