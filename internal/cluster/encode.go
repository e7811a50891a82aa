package cluster

import (
	"errors"
	"strconv"
	"strings"
)

// MQTT topic levels may hold any UTF-8 but NATS subject tokens (and
// JetStream keys) may not hold '.', whitespace, '*' or '>', nor be empty.
// A level is therefore encoded byte by byte: letters, digits and '-' stay,
// every other byte becomes '_' and two upper-case hex digits, and an empty
// level is a lone '_'. The encoding is reversible and its tokens are valid
// both as subject tokens and as key-value keys.

const hexDigits = "0123456789ABCDEF"

// appendLevel appends the token of one topic level.
func appendLevel(dst []byte, level string) []byte {
	if level == "" {
		return append(dst, '_')
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if plain(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '_', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// appendTopic appends the tokens of every level of topic, '.'-separated.
func appendTopic(dst []byte, topic string) []byte {
	for i := 0; ; i++ {
		level, rest, more := strings.Cut(topic, "/")
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = appendLevel(dst, level)
		if !more {
			return dst
		}
		topic = rest
	}
}

// topicKey is the key-value key (and subject tail) of a topic.
func topicKey(topic string) string { return string(appendTopic(nil, topic)) }

// idKey is the key of a client id: one token, '/' encoded too.
func idKey(id string) string { return string(appendLevel(nil, id)) }

var errBadToken = errors.New("cluster: malformed subject token")

// decodeTopic reverses appendTopic.
func decodeTopic(key string) (string, error) {
	var b strings.Builder
	for i, tok := range strings.Split(key, ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		if err := decodeLevel(&b, tok); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func decodeLevel(b *strings.Builder, tok string) error {
	if tok == "_" {
		return nil
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case plain(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(tok):
			v, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
			if err != nil || strings.ToUpper(tok[i+1:i+3]) != tok[i+1:i+3] {
				return errBadToken
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return errBadToken
		}
	}
	return nil
}

// filterSubjects are the NATS subjects (below the message prefix) that
// carry what an MQTT filter matches: '+' is '*', and a trailing '#' is '>'
// plus the parent level itself, since MQTT "a/#" also matches "a". NATS
// wildcards know nothing of MQTT's rule that a leading wildcard skips
// $-topics; the receiving node's own topic tree applies it.
func filterSubjects(filter string) []string {
	levels := strings.Split(filter, "/")
	last := len(levels) - 1
	multi := levels[last] == "#"
	if multi {
		levels = levels[:last]
	}
	var b []byte
	for i, l := range levels {
		if i > 0 {
			b = append(b, '.')
		}
		if l == "+" {
			b = append(b, '*')
		} else {
			b = appendLevel(b, l)
		}
	}
	switch {
	case !multi:
		return []string{string(b)}
	case len(levels) == 0:
		return []string{">"}
	}
	return []string{string(b) + ".>", string(b)}
}

var errSubjectTooLong = errors.New("cluster: topic too long for a NATS subject")

var errDisconnected = errors.New("cluster: not connected to NATS")
