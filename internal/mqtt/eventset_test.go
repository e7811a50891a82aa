package mqtt

import (
	"strings"
	"testing"
)

// Every event type is in AllEvents and EventNames, and ParseEvents reads
// back what String writes; an unknown name is refused with the list.
func TestEventSetAndNames(t *testing.T) {
	var names []string
	for _, ty := range EventTypes() {
		if !AllEvents().Has(ty) {
			t.Errorf("AllEvents lacks %s", ty)
		}
		names = append(names, ty.String())
	}
	if AllEvents().Has(numEventTypes) {
		t.Errorf("AllEvents %b has a bit past the last event type", AllEvents())
	}
	if got := EventNames(); got != strings.Join(names, ", ") {
		t.Errorf("EventNames = %q", got)
	}
	m, err := ParseEvents(names)
	if err != nil || m != AllEvents() {
		t.Fatalf("ParseEvents(every name) = %b, %v; want %b", m, err, AllEvents())
	}
	if m, err := ParseEvents([]string{"broker_client_connected"}); err != nil || m != EventMask(0).With(EventClientConnected) {
		t.Fatalf("ParseEvents(broker_client_connected) = %b, %v", m, err)
	}
	if m, err := ParseEvents(nil); err != nil || m != 0 {
		t.Fatalf("ParseEvents(nil) = %b, %v; want the empty set", m, err)
	}
	_, err = ParseEvents([]string{"broker_client_connected", "client_connected"})
	if err == nil || !strings.Contains(err.Error(), `"client_connected"`) || !strings.Contains(err.Error(), EventNames()) {
		t.Fatalf("ParseEvents(an unknown name) = %v; want an error naming it and listing the known ones", err)
	}
}
