package main

import (
	"bytes"
	"encoding/json"
	"errors"
)

// A batch is read in one of two ways (why: plugin.go, at its top):
//
//   - scanFast, on most batches: one pass of byte searches that takes each
//     event's id and type from where the broker's encoder
//     (internal/webhook/encode.go) writes them, `{"id":"..","seq":N,"type":"..",`,
//     and finds the next event by those opening bytes; it allocates
//     nothing. That is all counting needs: events, by type, and duplicate
//     ids (idSet). A batch not laid out as expected is declined and gets
//     the full check, so damaged event heads are never counted as good.
//   - scanBatch, on a sample and on declined batches: json.Valid on the
//     whole body, then every field the plugin's per-event checks look at,
//     which is what catches a broken time, payload or message.

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

// scanBatch decodes the fields of an events batch that the bench plugin
// checks, into dst (reused). encoding/json would take about 3.5 µs per
// event, which at 100 k events/s is a third of a core taken from the
// broker being measured; this takes a fraction of that. The body is first
// checked with json.Valid, so the walk below can assume well-formed JSON;
// a string field with escapes is decoded by encoding/json.
func scanBatch(body []byte, dst []benchEvent) ([]benchEvent, error) {
	if !json.Valid(body) {
		return dst, errors.New("not valid JSON")
	}
	s := scanner{b: body}
	if !s.objectStart() {
		return dst, errors.New("not an object")
	}
	found := false
	for s.nextKey() {
		if string(s.key()) != `"events"` {
			s.skip()
			continue
		}
		found = true
		if s.peek() != '[' {
			return dst, errors.New("events is not an array")
		}
		s.i++
		for s.nextElem() {
			if s.peek() != '{' {
				return dst, errors.New("an event is not an object")
			}
			dst = append(dst, benchEvent{})
			if err := s.event(&dst[len(dst)-1]); err != nil {
				return dst, err
			}
		}
	}
	if !found {
		return dst, errors.New("no events array")
	}
	return dst, nil
}

// scanner walks JSON already known to be valid: after '{' comes a key or
// '}', after a value ',' or the container's end, so a ',' can simply be
// stepped over.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) objectStart() bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	return true
}

// nextKey moves to the next key of the current object, false at its end.
func (s *scanner) nextKey() bool {
	c := s.peek()
	if c == '}' {
		s.i++
		return false
	}
	if c == ',' {
		s.i++
	}
	return true
}

// nextElem moves to the next element of the current array, false at its
// end.
func (s *scanner) nextElem() bool {
	c := s.peek()
	if c == ']' {
		s.i++
		return false
	}
	if c == ',' {
		s.i++
	}
	return true
}

// raw reads a string token and returns it with its quotes, aliasing the
// body; escaped reports a backslash in it.
func (s *scanner) raw() (tok []byte, escaped bool) {
	s.peek()
	start := s.i
	s.i++ // opening quote
	for s.b[s.i] != '"' {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
		s.i++
	}
	s.i++
	return s.b[start:s.i], escaped
}

// str reads a string token.
func (s *scanner) str() string {
	tok, escaped := s.raw()
	if !escaped {
		return string(tok[1 : len(tok)-1])
	}
	var v string
	json.Unmarshal(tok, &v)
	return v
}

// key reads an object key and its colon. Keys the plugin looks for have
// no escapes, so the quoted token is compared as is, without allocating.
func (s *scanner) key() []byte {
	tok, _ := s.raw()
	s.peek()
	s.i++ // ':'
	return tok
}

// skip passes over one value of any kind.
func (s *scanner) skip() {
	switch s.peek() {
	case '"':
		s.raw()
	case '{', '[':
		depth := 0
		for {
			switch s.b[s.i] {
			case '"':
				s.raw()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return
			}
		}
	default: // number, true, false, null
		for s.i < len(s.b) && s.b[s.i] != ',' && s.b[s.i] != '}' && s.b[s.i] != ']' && s.b[s.i] != ' ' && s.b[s.i] != '\n' {
			s.i++
		}
	}
}

// uint reads a non-negative integer; ok is false for any other value.
func (s *scanner) uint() (v uint64, ok bool) {
	s.peek()
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	if s.i == start {
		s.skip()
		return 0, false
	}
	if c := s.peek(); c != ',' && c != '}' {
		s.skip() // a fraction or an exponent
		return 0, false
	}
	return v, true
}

// strField reads a string value into dst; a value of another type leaves
// dst empty (the check then fails).
func (s *scanner) strField(dst *string) {
	if s.peek() == '"' {
		*dst = s.str()
		return
	}
	s.skip()
}

func (s *scanner) event(e *benchEvent) error {
	s.objectStart()
	for s.nextKey() {
		switch string(s.key()) {
		case `"id"`:
			s.strField(&e.ID)
		case `"seq"`:
			e.Seq, _ = s.uint()
		case `"type"`:
			s.strField(&e.Type)
		case `"time"`:
			s.strField(&e.Time)
		case `"broker"`:
			s.strField(&e.Broker)
		case `"client_id"`:
			if s.peek() == '"' {
				v := s.str()
				e.ClientID = &v
			} else {
				s.skip()
			}
		case `"message"`:
			if s.peek() != '{' {
				s.skip()
				continue
			}
			e.Message = &eventMessage{}
			s.objectStart()
			for s.nextKey() {
				switch string(s.key()) {
				case `"topic"`:
					s.strField(&e.Message.Topic)
				case `"payload"`:
					s.strField(&e.Message.Payload)
				default:
					s.skip()
				}
			}
		default:
			s.skip()
		}
	}
	return nil
}
