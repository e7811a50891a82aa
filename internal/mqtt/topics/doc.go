// Package topics matches MQTT topic names against topic filters. It holds
// the broker's subscription tree ([Tree]: which subscriptions does a
// published message reach?), its retained-message store ([Retained]: which
// retained messages does a new subscription receive?) and the matching rule
// itself for one pair ([MatchFilter]).
//
// All three implement the same rule (MQTT 3.1.1 and 5.0, section 4.7), and
// the package tests hold them to one table so they cannot disagree:
//
//   - a topic is split into levels on '/', and empty levels are real levels
//     ("a//b" has three, "/a" and "a/" have two);
//   - '+' matches exactly one level, an empty one included;
//   - '#' matches its parent level and any number of child levels, so
//     "sport/#" matches "sport";
//   - a filter whose first level is '+' or '#' does not match a topic name
//     that begins with '$', so "#" does not see "$SYS/uptime" while
//     "$SYS/#" does;
//   - everything else compares byte for byte (case sensitive).
//
// Filters and topic names are assumed valid: the broker validates them
// before they reach this package. Invalid input never panics, and all three
// matchers still agree on it (a '#' that is not the last level matches
// nothing, a level such as "a+" is a literal), which is what lets the fuzz
// target compare them on arbitrary strings.
package topics
