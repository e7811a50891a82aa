package packets

import "testing"

// DecodeSeen keeps the last topic name it validated, and only that: a topic
// that fails leaves it, an alias-only PUBLISH (no topic name) leaves it,
// and a valid new one replaces it.
func TestDecodeSeenKeepsOnlyValidatedNames(t *testing.T) {
	enc := func(p *Publish) (FixedHeader, []byte) {
		raw, err := p.Append(nil, V5)
		if err != nil {
			t.Fatal(err)
		}
		fh, n, err := DecodeFixedHeader(raw)
		if err != nil {
			t.Fatal(err)
		}
		return fh, raw[n:]
	}
	var seen []byte
	var p Publish
	step := func(topic string, alias uint16, wantErr bool, wantSeen string) {
		t.Helper()
		q := &Publish{Topic: topic, Payload: []byte("x")}
		if alias != 0 {
			q.Props.TopicAlias = alias
			q.Props.Set(PropTopicAlias)
		}
		fh, body := enc(q)
		err := p.DecodeSeen(fh, body, V5, &seen)
		if (err != nil) != wantErr {
			t.Fatalf("%q: err %v, want error %v", topic, err, wantErr)
		}
		if err == nil && p.Topic != topic {
			t.Fatalf("decoded topic %q, want %q", p.Topic, topic)
		}
		if string(seen) != wantSeen {
			t.Fatalf("after %q: seen %q, want %q", topic, seen, wantSeen)
		}
	}
	step("a/b", 0, false, "a/b")
	step("a/b", 0, false, "a/b")
	step("a/+", 0, true, "a/b")
	step("a/\xff", 0, true, "a/b")
	step("", 1, false, "a/b")
	step("a/c", 1, false, "a/c")
	step("a/b", 0, false, "a/b")
}
