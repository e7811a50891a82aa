package mqtt

import (
	"fmt"
	"strings"
)

// AllEvents is the set of every event type the broker emits: what a
// plugin gets when it names none.
func AllEvents() EventMask { return 1<<numEventTypes - 1 }

// EventNames is every event name in declaration order, comma-separated:
// the list to offer whoever wrote a name the broker does not know.
func EventNames() string { return strings.Join(eventNames[:], ", ") }

// ParseEvents is the set of the named event types. An unknown name is an
// error that lists the known ones; so that a config naming none is not
// read as naming all, an empty list is the empty set.
func ParseEvents(names []string) (EventMask, error) {
	var m EventMask
	for _, n := range names {
		t, ok := ParseEventType(n)
		if !ok {
			return 0, fmt.Errorf("unknown event %q (valid: %s)", n, EventNames())
		}
		m = m.With(t)
	}
	return m, nil
}
