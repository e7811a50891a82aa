package aclfile

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// sharedCases is testdata/acl-cases.json: the ACL rule as cases that
// hooks-node's tests (examples/hooks-node/test/cases.test.js) read too, so
// the two implementations cannot drift apart.
type sharedCases struct {
	Filters []struct {
		Rule, Sub        string
		Covers, Overlaps bool
	}
	Policies []struct {
		Name   string
		Rules  []json.RawMessage // written as they are into a YAML rules: list
		Checks []struct {
			User, Client, Action, Topic, Want, Why string
		}
	}
}

func loadSharedCases(t *testing.T) sharedCases {
	t.Helper()
	data, err := os.ReadFile("testdata/acl-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var sc sharedCases
	if err := json.Unmarshal(data, &sc); err != nil {
		t.Fatalf("testdata/acl-cases.json: %v", err)
	}
	if len(sc.Filters) == 0 || len(sc.Policies) == 0 {
		t.Fatal("testdata/acl-cases.json holds no cases")
	}
	return sc
}

// The shared filter rows agree with covers, overlaps and brute force.
func TestSharedFilterCases(t *testing.T) {
	for _, f := range loadSharedCases(t).Filters {
		p := mustCompile(t, f.Rule, false)
		if got := p.covers(f.Sub, "", ""); got != f.Covers {
			t.Errorf("covers(%q, %q) = %v, want %v", f.Rule, f.Sub, got, f.Covers)
		}
		if got := p.overlaps(f.Sub, "", ""); got != f.Overlaps {
			t.Errorf("overlaps(%q, %q) = %v, want %v", f.Rule, f.Sub, got, f.Overlaps)
		}
		if c, o := bruteCovers(f.Rule, f.Sub); c != f.Covers || o != f.Overlaps {
			t.Errorf("brute force on %q %q: covers %v overlaps %v", f.Rule, f.Sub, c, o)
		}
	}
}

// Each shared policy, loaded as a YAML file (JSON is YAML), answers each
// of its checks as the file says.
func TestSharedPolicyCases(t *testing.T) {
	actions := map[string]mqtt.Action{"subscribe": sub, "publish": pub, "receive": rcv}
	results := map[string]hooks.Result{"allow": hooks.Allow, "deny": hooks.Deny, "ignore": hooks.Ignore}
	for _, pc := range loadSharedCases(t).Policies {
		t.Run(pc.Name, func(t *testing.T) {
			doc, err := json.Marshal(map[string]any{"rules": pc.Rules})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(Options{File: hookstest.WriteFile(t, "acl.yaml", string(doc))})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range pc.Checks {
				a, ok1 := actions[c.Action]
				want, ok2 := results[c.Want]
				if !ok1 || !ok2 {
					t.Fatalf("bad check %+v", c)
				}
				client := c.Client
				if client == "" {
					client = "c"
				}
				d, _ := p.FilterTopic(context.Background(), &mqtt.ClientInfo{Username: c.User, ClientID: client}, mqtt.TopicRequest{Action: a, Topic: c.Topic})
				if d.Result != want {
					t.Errorf("user %q client %q %s %q: %v, want %v (%s)", c.User, client, c.Action, c.Topic, d.Result, want, c.Why)
				}
			}
		})
	}
}
