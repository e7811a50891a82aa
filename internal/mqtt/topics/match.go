package topics

import "strings"

// levelEnd returns the index of the '/' that ends the level starting at pos
// in s, or len(s) for the last level. Callers walk a topic by index with
// it, one level at a time, so that matching allocates nothing: each level is
// the substring s[pos:levelEnd(s, pos)], and the next level starts one byte
// later. A position past len(s) means there are no levels left; pos ==
// len(s) is a real, empty, last level (the one after the '/' in "a/").
func levelEnd(s string, pos int) int {
	if i := strings.IndexByte(s[pos:], '/'); i >= 0 {
		return pos + i
	}
	return len(s)
}

// dollarTopic reports whether a topic name (or a level of one) begins with
// '$', the prefix of server topics such as $SYS.
func dollarTopic(s string) bool {
	return len(s) > 0 && s[0] == '$'
}

// wildcardFirst reports whether a filter's first level is '+' or '#'.
func wildcardFirst(filter string) bool {
	end := levelEnd(filter, 0)
	return end == 1 && (filter[0] == '+' || filter[0] == '#')
}

// MatchFilter reports whether topic filter filter matches topic name topic.
//
// It walks both strings once, level by level, and never backtracks: '+'
// consumes exactly one level and '#' ends the filter, so at every step there
// is one way forward. The cost is linear in len(filter)+len(topic) and
// nothing is allocated.
func MatchFilter(filter, topic string) bool {
	// [MQTT-4.7.2-1] a filter starting with a wildcard does not match a
	// topic name starting with '$'.
	if dollarTopic(topic) && wildcardFirst(filter) {
		return false
	}
	f, t := 0, 0 // start of the current level in filter and topic
	for {
		if f > len(filter) {
			// The filter is used up: a match only if the topic is too.
			return t > len(topic)
		}
		fEnd := levelEnd(filter, f)
		level := filter[f:fEnd]
		if level == "#" {
			// '#' matches the parent level and any number of child levels
			// (4.7.1.2), so whatever is left of the topic, none included.
			// [MQTT-4.7.1-2] '#' must be the filter's last level; one that
			// is not (an invalid filter) matches nothing, as in Tree.
			return fEnd == len(filter)
		}
		if t > len(topic) {
			return false // the topic ran out first
		}
		tEnd := levelEnd(topic, t)
		// [MQTT-4.7.1-3] '+' is a wildcard only when it is the whole
		// level, and then matches exactly one topic level, empty or not.
		// [MQTT-4.7.3-4] anything else compares byte for byte: no case
		// folding, no normalisation.
		if level != "+" && level != topic[t:tEnd] {
			return false
		}
		f, t = fEnd+1, tEnd+1
	}
}
