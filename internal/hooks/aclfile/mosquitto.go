package aclfile

import (
	"fmt"
	"strings"
)

// parseMosquitto reads Mosquitto's acl_file format, one directive a line:
//
//	user NAME                                     the topic lines below are NAME's
//	topic [read|write|readwrite|deny] TOPIC       a rule for the current user
//	pattern [read|write|readwrite|deny] TOPIC     a rule for every client, with %u and %c
//
// topic lines before the first user line are for clients without a user
// name. The access defaults to readwrite; deny refuses every action. Only
// pattern lines substitute %u and %c; in a topic line '%' is a character.
// Blank lines and lines starting with '#' are ignored. name is the file
// name errors start with.
func parseMosquitto(name string, data []byte) (*ruleSet, error) {
	rs := newRuleSet()
	sc, who := scopeAnonymous, ""
	n := 0
	for raw := range strings.Lines(string(data)) {
		n++
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest := cutBlank(line)
		switch kw {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("%s:%d: user needs a name (user NAME)", name, n)
			}
			sc, who = scopeUser, rest
		case "topic", "pattern":
			r, err := mosquittoRule(kw, rest)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, n, err)
			}
			if kw == "pattern" {
				rs.add(scopeAll, "", r, n)
			} else {
				rs.add(sc, who, r, n)
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown directive %q (lines are user NAME, topic [read|write|readwrite|deny] TOPIC, pattern [read|write|readwrite|deny] TOPIC, or # comments)", name, n, kw)
		}
	}
	return rs, nil
}

// mosquittoRule parses what follows topic or pattern: an optional access
// word, then the topic (the rest of the line, spaces included).
func mosquittoRule(kw, rest string) (*rule, error) {
	r := &rule{access: accReadWrite}
	word, topic := cutBlank(rest)
	switch word {
	case "read":
		r.access = accRead
	case "write":
		r.access = accWrite
	case "readwrite":
	case "deny":
		r.deny = true
	default:
		topic = rest // no access word: all of it is the topic
	}
	if topic == "" {
		return nil, fmt.Errorf("%s needs a topic (%s [read|write|readwrite|deny] TOPIC)", kw, kw)
	}
	pat, err := compile(topic, kw == "pattern")
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", kw, topic, err)
	}
	r.pat = pat
	return r, nil
}

// cutBlank splits s at its first space or tab; the rest loses its
// surrounding blanks, but keeps those inside (topics may contain spaces).
func cutBlank(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}
