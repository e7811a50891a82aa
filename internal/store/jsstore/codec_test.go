package jsstore

import (
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

// Tokens are valid subject tokens, distinct for distinct ids, and short
// even for the longest ids.
func TestToken(t *testing.T) {
	long := strings.Repeat("x", 65535)
	ids := []string{"", "_", "a", "A", "a.b", "a*", ">", "a b", "é", "_5F", "~", long, long[:200] + "y", long[:64]}
	seen := map[string]string{}
	for _, id := range ids {
		tok := token(id)
		if tok == "" || len(tok) > maxToken+1 || strings.ContainsAny(tok, ". *>\t\r\n") {
			t.Errorf("token(%.20q) = %q", id, tok)
		}
		if other, ok := seen[tok]; ok {
			t.Errorf("token(%.20q) = token(%.20q) = %q", id, other, tok)
		}
		seen[tok] = id
	}
}

// A client id too long for a subject token still names its own session.
func TestLongClientID(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	id := strings.Repeat("long/", 2000)
	var b store.Batch
	b.PutSession(&store.SessionRecord{ClientID: id, Version: 5})
	b.Enqueue(msg(1), []store.Delivery{{ClientID: id, QoS: 1}})
	commit(t, s, &b)
	if r, err := s.Session(id); err != nil || r == nil || r.ClientID != id {
		t.Fatalf("Session: %v", err)
	}
	if got, _ := payloads(t, s, id); len(got) != 1 {
		t.Fatalf("queue %q", got)
	}
}
