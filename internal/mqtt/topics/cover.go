package topics

import "strings"

// Covers reports whether filter outer matches every topic that filter
// inner can match: "sensors/#" covers "sensors/+/temp", and
// "sensors/+/temp" does not cover "sensors/#". For a topic name (no
// wildcards) inner it is MatchFilter(outer, inner). Both must be valid
// filters.
func Covers(outer, inner string) bool {
	if dollarTopic(inner) && wildcardFirst(outer) {
		return false // inner reaches $ topics outer cannot [MQTT-4.7.2-1]
	}
	if inner == "#" && outer == "+/#" {
		// "+/#" matches every topic of one level or more, as "#" does:
		// there is no parent above the first level for "#" to add.
		return true
	}
	o, i := 0, 0 // the start of the current level in outer and inner
	for {
		if o <= len(outer) && outer[o:levelEnd(outer, o)] == "#" {
			return true // whatever is left of inner, none included
		}
		if i > len(inner) {
			return o > len(outer) // inner is used up: so must outer be
		}
		iEnd := levelEnd(inner, i)
		il := inner[i:iEnd]
		if il == "#" || o > len(outer) {
			return false // inner goes deeper than outer reaches
		}
		oEnd := levelEnd(outer, o)
		if ol := outer[o:oEnd]; ol != "+" && (il == "+" || il != ol) {
			return false
		}
		o, i = oEnd+1, iEnd+1
	}
}

// Overlaps reports whether some topic name matches both filters a and b.
func Overlaps(a, b string) bool {
	if (dollarTopic(a) && wildcardFirst(b)) || (dollarTopic(b) && wildcardFirst(a)) {
		return false
	}
	x, y := 0, 0
	for {
		xl, yl := level(a, x), level(b, y)
		if xl == "#" || yl == "#" {
			return true
		}
		if x > len(a) || y > len(b) {
			return x > len(a) && y > len(b) // both used up at once
		}
		if xl != "+" && yl != "+" && xl != yl {
			return false
		}
		x, y = levelEnd(a, x)+1, levelEnd(b, y)+1
	}
}

// level is the level of s starting at pos, or "" past the end.
func level(s string, pos int) string {
	if pos > len(s) {
		return ""
	}
	return s[pos:levelEnd(s, pos)]
}

// validLevels reports whether every '+' and '#' in filter fills a whole
// level and '#' comes last.
func validLevels(filter string) bool {
	for l := range strings.SplitSeq(filter, "/") {
		if len(l) > 1 && strings.ContainsAny(l, "+#") {
			return false
		}
	}
	i := strings.IndexByte(filter, '#')
	return i < 0 || i == len(filter)-1
}

// ValidFilter reports whether s is a valid topic filter: not empty, no
// NUL, wildcards filling whole levels, '#' last.
func ValidFilter(s string) bool {
	return s != "" && len(s) <= 65535 && strings.IndexByte(s, 0) < 0 && validLevels(s)
}
