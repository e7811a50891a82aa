package main

import (
	"bytes"
)

// Counting events (plugin_events.go says when): scanFast takes each
// event's id and type from where the broker's encoder
// (internal/webhook/encode.go) writes them, `{"id":"..","seq":N,"type":"..",`,
// and finds the next event by those opening bytes; it allocates nothing.
// That is all counting needs: events, by type, and duplicate ids (idSet).
// A batch not laid out as expected is declined and gets the full check, so
// damaged event heads are never counted as good.

// fastEvent is what scanFast takes from an event: its id and type, both
// aliasing the body and both free of escapes.
type fastEvent struct {
	id, typ []byte
}

const (
	batchHead = `{"events":[`
	batchEnd  = `}]}` // the last event's end and the batch's
	eventHead = `{"id":"`
)

// scanFast appends the id and type of every event in body to dst. ok is
// false when body is not laid out exactly as the broker's encoder writes
// it (or holds no event); dst is then meaningless and the caller checks the
// batch in full. A `{"id":"` can only open an object whose first key is
// id (inside a string its quotes would be escaped), so in the broker's
// output it starts an event, or rarely an object in a broker_pre_start
// config. Each one must follow a "}," and be followed by seq and type, else
// the batch is declined rather than guessed at: glued or cut events, and
// such a config, go to the full check instead of being miscounted.
func scanFast(body []byte, dst []fastEvent) (_ []fastEvent, ok bool) {
	if len(body) < len(batchHead)+len(batchEnd) || string(body[:len(batchHead)]) != batchHead ||
		string(body[len(body)-len(batchEnd):]) != batchEnd {
		return dst, false
	}
	b := body[:len(body)-2] // up to the last event's closing brace, included
	i := len(batchHead)
	for {
		if !hasAt(b, i, eventHead) {
			return dst, false
		}
		var e fastEvent
		if e.id, i = plainString(b, i+len(eventHead)); e.id == nil {
			return dst, false
		}
		// The seq is not kept (the id carries it), but it must be there:
		// digits, no leading zero, so that seq 0 goes to the full check.
		if !hasAt(b, i, `,"seq":`) {
			return dst, false
		}
		i += len(`,"seq":`)
		j := i
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == i || b[i] == '0' || !hasAt(b, j, `,"type":"`) {
			return dst, false
		}
		if e.typ, i = plainString(b, j+len(`,"type":"`)); e.typ == nil {
			return dst, false
		}
		dst = append(dst, e)
		next := bytes.Index(b[i:], []byte(eventHead))
		if next < 0 {
			return dst, true
		}
		i += next
		if b[i-2] != '}' || b[i-1] != ',' {
			return dst, false
		}
	}
}

func hasAt(b []byte, i int, s string) bool {
	return len(b)-i >= len(s) && string(b[i:i+len(s)]) == s
}

// plainString reads the rest of a string whose opening quote is just
// before i: its bytes and the index past its closing quote. nil when it is
// empty, unterminated or has an escape (the full check decodes those).
func plainString(b []byte, i int) ([]byte, int) {
	n := bytes.IndexByte(b[i:], '"')
	if n <= 0 {
		return nil, i
	}
	s := b[i : i+n]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, i
	}
	return s, i + n + 1
}

// idSet is the set of event ids seen, so duplicates are counted exactly.
// The broker's ids are a per-process prefix ending in '-' and the event's
// seq in lowercase hex (internal/hooks), so those are kept as one bit per
// seq, in 64 Ki-bit chunks per prefix, with the last prefix and chunk at
// hand: events arrive nearly in seq order, and a string and a map insert
// per event would cost more than all the rest of the fast path. Any other
// id goes into a plain set.
type idSet struct {
	prefixes map[string]*seqBits
	last     *seqBits // the prefix used last
	other    map[string]struct{}
}

type seqBits struct {
	prefix  string
	chunks  map[uint64]*bitChunk
	lastKey uint64
	last    *bitChunk // chunks[lastKey]
}

const chunkBits = 1 << 16

type bitChunk [chunkBits / 64]uint64

// add records id; false if it was seen before.
func (s *idSet) add(id []byte) bool {
	prefix, n, ok := splitID(id)
	if !ok {
		if _, dup := s.other[string(id)]; dup {
			return false
		}
		if s.other == nil {
			s.other = map[string]struct{}{}
		}
		s.other[string(id)] = struct{}{}
		return true
	}
	p := s.last
	if p == nil || p.prefix != string(prefix) {
		if p = s.prefixes[string(prefix)]; p == nil {
			p = &seqBits{prefix: string(prefix), chunks: map[uint64]*bitChunk{}}
			if s.prefixes == nil {
				s.prefixes = map[string]*seqBits{}
			}
			s.prefixes[p.prefix] = p
		}
		s.last = p
	}
	key := n / chunkBits
	c := p.last
	if c == nil || p.lastKey != key {
		if c = p.chunks[key]; c == nil {
			c = new(bitChunk)
			p.chunks[key] = c
		}
		p.last, p.lastKey = c, key
	}
	w, bit := n%chunkBits/64, uint64(1)<<(n%64)
	if c[w]&bit != 0 {
		return false
	}
	c[w] |= bit
	return true
}

// splitID splits an id of the broker's form, prefix + "-" + hex, where the
// hex is written as strconv.AppendUint(…, 16) writes it: that form is one
// to one with (prefix, n), so two ids are equal exactly when their pairs
// are. ok is false for any other id.
func splitID(id []byte) (prefix []byte, n uint64, ok bool) {
	dash := bytes.LastIndexByte(id, '-')
	h := id[dash+1:]
	if dash < 0 || len(h) == 0 || len(h) > 16 || (h[0] == '0' && len(h) > 1) {
		return nil, 0, false
	}
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		default:
			return nil, 0, false
		}
	}
	return id[:dash+1], n, true
}
