package aclfile

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// parseYAML reads the YAML format: a list of rules, tried as a whole (a
// matching deny wins over any grant, whatever the order).
//
//	rules:
//	  - user: alice              # scope: user NAME, client ID, anonymous: true,
//	    topic: home/alice/#      #   or none (every client)
//	    actions: [subscribe, publish, receive]  # or read, write, readwrite (default)
//	    result: allow            # or deny
//	  - topic: devices/%c/#      # %u and %c stand for the user name and client id
//	    actions: [publish]
//
// name is the file name errors start with.
func parseYAML(name string, data []byte) (*ruleSet, error) {
	rs := newRuleSet()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if len(doc.Content) == 0 {
		return rs, nil // an empty file: no rules
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the file must be a mapping with a rules: list", name, root.Line)
	}
	var rules *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "rules" {
			return nil, fmt.Errorf("%s:%d: unknown key %q (the file holds one key, rules:)", name, k.Line, k.Value)
		}
		rules = deref(root.Content[i+1])
	}
	if rules == nil || rules.Tag == "!!null" {
		return rs, nil
	}
	if rules.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: rules must be a list (each item starting with -)", name, rules.Line)
	}
	for i, rn := range rules.Content {
		sc, who, r, err := yamlRule(deref(rn))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: rule %d: %v", name, err.line, i+1, err.msg)
		}
		rs.add(sc, who, r, rn.Line)
	}
	return rs, nil
}

// yamlLine matches the position in the YAML library's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError rewrites a YAML syntax error as FILE:LINE: what.
func yamlError(name string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s (the file is not valid YAML)", name, m[1], m[2])
	}
	return fmt.Errorf("%s: %s (the file is not valid YAML)", name, strings.TrimPrefix(err.Error(), "yaml: "))
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// ruleError is a problem with one rule, at a line of the file.
type ruleError struct {
	line int
	msg  string
}

func errAt(n *yaml.Node, format string, args ...any) *ruleError {
	return &ruleError{n.Line, fmt.Sprintf(format, args...)}
}

var ruleKeys = []string{"user", "client", "anonymous", "topic", "actions", "result"}

var actionNames = map[string]access{
	"subscribe": accSubscribe, "publish": accPublish, "receive": accReceive,
	"read": accRead, "write": accWrite, "readwrite": accReadWrite,
}

// yamlRule reads one item of rules.
func yamlRule(n *yaml.Node) (scope, string, *rule, *ruleError) {
	if n.Kind != yaml.MappingNode {
		return 0, "", nil, errAt(n, "a rule is a mapping of %s", strings.Join(ruleKeys, ", "))
	}
	sc, who := scopeAll, ""
	var scopeKey, topic string
	r := &rule{access: accReadWrite}
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !slices.Contains(ruleKeys, k.Value) {
			return 0, "", nil, errAt(k, "unknown key %q (use %s)", k.Value, strings.Join(ruleKeys, ", "))
		}
		if seen[k.Value] {
			return 0, "", nil, errAt(k, "%s is given twice", k.Value)
		}
		seen[k.Value] = true
		if k.Value != "actions" && v.Kind != yaml.ScalarNode {
			return 0, "", nil, errAt(v, "%s must be a single value", k.Value)
		}
		switch k.Value {
		case "user", "client", "anonymous":
			if scopeKey != "" {
				return 0, "", nil, errAt(k, "%s and %s both given; a rule has one scope (user, client, anonymous, or none for every client)", scopeKey, k.Value)
			}
			scopeKey = k.Value
			switch {
			case k.Value == "anonymous" && v.Value != "true":
				return 0, "", nil, errAt(v, "anonymous must be true (leave it out for a rule about every client)")
			case k.Value == "anonymous":
				sc = scopeAnonymous
			case v.Tag == "!!null" || v.Value == "":
				return 0, "", nil, errAt(v, "%s is empty (give a name, or leave it out for a rule about every client)", k.Value)
			case k.Value == "user":
				sc, who = scopeUser, v.Value
			default:
				sc, who = scopeClient, v.Value
			}
		case "topic":
			if v.Tag == "!!null" {
				return 0, "", nil, errAt(v, "topic is empty (quote a topic that starts with #: topic: \"#\")")
			}
			topic = v.Value
		case "actions":
			acc, err := yamlActions(v)
			if err != nil {
				return 0, "", nil, err
			}
			r.access = acc
		case "result":
			switch v.Value {
			case "allow":
			case "deny":
				r.deny = true
			default:
				return 0, "", nil, errAt(v, "result %q is not allow or deny", v.Value)
			}
		}
	}
	if !seen["topic"] {
		return 0, "", nil, errAt(n, "topic is missing")
	}
	pat, err := compile(topic, true)
	if err != nil {
		return 0, "", nil, errAt(n, "topic %q: %v", topic, err)
	}
	r.pat = pat
	return sc, who, r, nil
}

// yamlActions reads actions: one name or a list of them.
func yamlActions(v *yaml.Node) (access, *ruleError) {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
		if len(items) == 0 {
			return 0, errAt(v, "actions is empty (leave it out for all: subscribe, publish, receive)")
		}
	}
	var acc access
	for _, it := range items {
		it = deref(it)
		a, ok := actionNames[it.Value]
		if it.Kind != yaml.ScalarNode || !ok {
			return 0, errAt(it, "%q is not an action (use subscribe, publish, receive, read, write or readwrite)", it.Value)
		}
		acc |= a
	}
	return acc, nil
}
