package aclfile

import (
	"fmt"
	"strings"
)

// A pattern is an ACL topic compiled into levels, so that a check walks the
// request's topic once, level by level, and allocates nothing: %u and %c are
// compared in place rather than substituted into a new string.
type pattern struct {
	levels []level
	usesU  bool // has %u
	usesC  bool // has %c
}

type levelKind uint8

const (
	literal  levelKind = iota // compares byte for byte
	plus                      // '+': any one level
	hash                      // '#': this level and all below, or none (last level only)
	template                  // literal text with %u / %c in it
)

type level struct {
	kind  levelKind
	text  string // literal: the level
	parts []part // template: the pieces, in order
}

// part is a piece of a template level: literal text, or the user name
// (sub 'u') or client id (sub 'c').
type part struct {
	text string
	sub  byte
}

// compile parses an ACL topic. With subst, %u and %c are substitutions
// (Mosquitto's pattern lines and every YAML rule); without, '%' is just a
// character (Mosquitto's topic lines). The error says what is wrong with
// the topic as an MQTT topic filter.
func compile(topic string, subst bool) (pattern, error) {
	if err := validFilter(topic); err != nil {
		return pattern{}, err
	}
	var p pattern
	for l := range strings.SplitSeq(topic, "/") {
		switch {
		case l == "+":
			p.levels = append(p.levels, level{kind: plus})
		case l == "#":
			p.levels = append(p.levels, level{kind: hash})
		case subst && (strings.Contains(l, "%u") || strings.Contains(l, "%c")):
			lv := level{kind: template}
			start := 0
			for i := 0; i+1 < len(l); i++ {
				if l[i] != '%' || (l[i+1] != 'u' && l[i+1] != 'c') {
					continue
				}
				if i > start {
					lv.parts = append(lv.parts, part{text: l[start:i]})
				}
				lv.parts = append(lv.parts, part{sub: l[i+1]})
				p.usesU = p.usesU || l[i+1] == 'u'
				p.usesC = p.usesC || l[i+1] == 'c'
				i++
				start = i + 1
			}
			if start < len(l) {
				lv.parts = append(lv.parts, part{text: l[start:]})
			}
			p.levels = append(p.levels, lv)
		default:
			p.levels = append(p.levels, level{kind: literal, text: l})
		}
	}
	return p, nil
}

// validFilter reports what makes s an invalid MQTT topic filter, or nil.
func validFilter(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("the topic is empty")
	case len(s) > 65535:
		return fmt.Errorf("the topic is longer than MQTT's 65535 bytes")
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("the topic contains a NUL character")
	case strings.HasPrefix(s, "$share/"):
		return fmt.Errorf("the topic starts with $share/; ACL topics name the filter inside a shared subscription (write sensors/# to cover $share/GROUP/sensors/#)")
	}
	for l := range strings.SplitSeq(s, "/") {
		if strings.ContainsAny(l, "+#") && len(l) > 1 {
			return fmt.Errorf("the level %q mixes a wildcard with other characters (+ and # must fill a whole level)", l)
		}
	}
	// [MQTT-4.7.1-2] '#' must be the last level.
	if i := strings.IndexByte(s, '#'); i >= 0 && i != len(s)-1 {
		return fmt.Errorf("'#' is not the last level (it matches everything below, so nothing can follow it)")
	}
	return nil
}

// equal compares one topic level with a literal or template level, given
// the values of %u and %c.
func (l *level) equal(s, u, c string) bool {
	if l.kind == literal {
		return s == l.text
	}
	for _, pt := range l.parts {
		v := pt.text
		switch pt.sub {
		case 'u':
			v = u
		case 'c':
			v = c
		}
		if !strings.HasPrefix(s, v) {
			return false
		}
		s = s[len(v):]
	}
	return s == ""
}

// wildFirst reports whether the first level is '+' or '#': such a filter
// does not match topics starting with '$' [MQTT-4.7.2-1].
func (p *pattern) wildFirst() bool {
	k := p.levels[0].kind
	return k == plus || k == hash
}

// dollarFirst reports whether every topic the pattern matches starts with
// '$'. Values starting with '$' are never substituted (see usable), so a
// template counts only by its own leading text.
func (p *pattern) dollarFirst() bool {
	l := &p.levels[0]
	switch l.kind {
	case literal:
		return strings.HasPrefix(l.text, "$")
	case template:
		return l.parts[0].sub == 0 && strings.HasPrefix(l.parts[0].text, "$")
	}
	return false
}

// levelEnd returns the index of the '/' ending the level that starts at
// pos in s, or len(s) for the last level.
func levelEnd(s string, pos int) int {
	if i := strings.IndexByte(s[pos:], '/'); i >= 0 {
		return pos + i
	}
	return len(s)
}

// covers reports whether the pattern matches every topic that filter can
// match. For a topic name (no wildcards) that is plain matching, so this
// one walk serves publish and receive as well as a subscribe deny. A deny
// "sensors/#" covers "sensors/+/temp"; "sensors/+/temp" does not cover
// "sensors/#".
func (p *pattern) covers(filter, u, c string) bool {
	if strings.HasPrefix(filter, "$") && p.wildFirst() {
		return false // the filter reaches $ topics the pattern cannot
	}
	if filter == "#" && len(p.levels) == 2 && p.levels[0].kind == plus && p.levels[1].kind == hash {
		// "+/#" matches every topic of one level or more, as "#" does:
		// there is no parent above the first level for "#" to add.
		return true
	}
	i, f := 0, 0 // the pattern's level; the start of the filter's level
	for {
		if i < len(p.levels) && p.levels[i].kind == hash {
			return true // whatever is left of the filter, none included
		}
		if f > len(filter) {
			return i == len(p.levels) // the filter is used up: so must the pattern be
		}
		end := levelEnd(filter, f)
		fl := filter[f:end]
		if fl == "#" || i == len(p.levels) {
			return false // the filter goes deeper than the pattern reaches
		}
		if a := &p.levels[i]; a.kind != plus && (fl == "+" || !a.equal(fl, u, c)) {
			return false
		}
		i, f = i+1, end+1
	}
}

// overlaps reports whether some topic matches both the pattern and filter:
// a grant matches a subscription that could receive something it allows.
func (p *pattern) overlaps(filter, u, c string) bool {
	fWild := len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') && (len(filter) == 1 || filter[1] == '/')
	if (strings.HasPrefix(filter, "$") && p.wildFirst()) || (fWild && p.dollarFirst()) {
		return false
	}
	i, f := 0, 0
	for {
		if i < len(p.levels) && p.levels[i].kind == hash {
			return true
		}
		end, fl := 0, ""
		if f <= len(filter) {
			end = levelEnd(filter, f)
			if fl = filter[f:end]; fl == "#" {
				return true
			}
		}
		if i == len(p.levels) || f > len(filter) {
			return i == len(p.levels) && f > len(filter) // both used up at once
		}
		if a := &p.levels[i]; a.kind != plus && fl != "+" && !a.equal(fl, u, c) {
			return false
		}
		i, f = i+1, end+1
	}
}
