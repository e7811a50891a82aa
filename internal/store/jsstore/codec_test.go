package jsstore

import (
	"crypto/sha256"
	"fmt"
	"slices"
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

// chunkEntries are a full chunk's worth of entries, many of them sharing
// bodies (inline or in body records), some acknowledged.
func chunkEntries() []entry {
	es := make([]entry, 256)
	for i := range es {
		var body string
		if i%7 == 0 {
			body = fmt.Sprint("u", i)
		} else {
			body = fmt.Sprint("s", i*5%11)
		}
		k := len(body) + int(body[len(body)-1])
		e := entry{body: body, d: store.Delivery{ClientID: "c", QoS: byte(i % 3), Retain: i%4 == 0, SubIDs: []uint32{uint32(i % 5)}[:i%2], Group: strings.Repeat("g", i%3)}}
		switch {
		case i%13 == 0:
			e.gone = true
		case body[0] == 's' && k%2 == 0:
			e.rec, e.idx, e.shared = fmt.Sprint("r", k%3), k, true
		default:
			e.msg = &store.MessageRecord{Topic: "t/" + body, Payload: []byte(body), QoS: 1}
		}
		es[i] = e
	}
	return es
}

// A chunk refers back to the last earlier entry, not acknowledged, with
// the same body: its encoding is fixed (these bytes were written before
// the search for that entry kept an index), and decodes to its entries.
func TestChunkBackRefs(t *testing.T) {
	es := chunkEntries()
	b := appendChunk(nil, 1000, es)
	sum := sha256.Sum256(b)
	if got := fmt.Sprintf("%d %x", len(b), sum); got != goldenChunk {
		t.Errorf("chunk encoding changed: %s, want %s", got, goldenChunk)
	}
	first, got, err := decodeChunk(b)
	if err != nil || first != 1000 || len(got) != len(es) {
		t.Fatalf("decodeChunk: %d, %d entries, %v", first, len(got), err)
	}
	for i := range es {
		w, g := &es[i], &got[i]
		if g.body != w.body || g.gone != w.gone || g.rec != w.rec || g.idx != w.idx || !slices.Equal(g.d.SubIDs, w.d.SubIDs) ||
			g.d.QoS != w.d.QoS || g.d.Retain != w.d.Retain || g.d.Group != w.d.Group || (w.msg == nil) != (g.msg == nil) || w.msg != nil && g.msg.Topic != w.msg.Topic {
			t.Fatalf("entry %d: %+v, want %+v", i, *g, *w)
		}
	}
}

const goldenChunk = "2718 5b3b9cc3433a4fbb7c6ae7df31696f7f3577a209238bca7051caf8a7ca20a8af"
