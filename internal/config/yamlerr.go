package config

import (
	"bytes"
	"fmt"
	"strings"
)

// yamlError words a YAML parse error for the operator. The parser reports
// an unclosed { or [ at the line where the enclosing block began, often the
// first line of the file; the line of the bracket left open is the one to
// fix, so it is named when one is found.
func yamlError(data []byte, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "did not find expected ',' or '}'") || strings.Contains(msg, "did not find expected ',' or ']'") {
		if line, open, ok := unclosedBracket(data); ok {
			return fmt.Errorf("line %d: not valid YAML: this %c is never closed (add the matching %c)", line, open, closing(open))
		}
	}
	return fmt.Errorf("not valid YAML: %w", err)
}

func closing(open byte) byte {
	if open == '[' {
		return ']'
	}
	return '}'
}

// unclosedBracket finds the line of the first flow-collection bracket ({ or
// [) that is not closed on its own line or by a later one, skipping quoted
// strings and comments. It is a heuristic for messages only: YAML flow
// collections may span lines, which it follows, and anything it cannot
// follow makes it report nothing.
func unclosedBracket(data []byte) (line int, open byte, ok bool) {
	type opening struct {
		line int
		ch   byte
	}
	var stack []opening
	for i, text := range bytes.Split(data, []byte("\n")) {
		var quote byte
		for j := 0; j < len(text); j++ {
			c := text[j]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '#' && (j == 0 || text[j-1] == ' ' || text[j-1] == '\t'):
				j = len(text)
			case c == '{' || c == '[':
				stack = append(stack, opening{i + 1, c})
			case c == '}' || c == ']':
				if len(stack) == 0 || closing(stack[len(stack)-1].ch) != c {
					return 0, 0, false
				}
				stack = stack[:len(stack)-1]
			}
		}
		// A block-context line (not indented past an open flow) after an
		// open bracket means that bracket was never closed.
		if len(stack) > 0 && stack[0].line < i+1 && startsBlockKey(text) {
			return stack[0].line, stack[0].ch, true
		}
	}
	if len(stack) > 0 {
		return stack[0].line, stack[0].ch, true
	}
	return 0, 0, false
}

// startsBlockKey reports whether a line looks like "key:" at the start of
// a block mapping entry, which cannot appear inside a flow collection.
func startsBlockKey(text []byte) bool {
	t := bytes.TrimLeft(text, " ")
	if len(t) == 0 || t[0] == '#' {
		return false
	}
	k, _, found := bytes.Cut(t, []byte(":"))
	return found && !bytes.ContainsAny(k, "{}[],\"'") && len(bytes.TrimSpace(k)) > 0 && (len(t) == len(k)+1 || t[len(k)+1] == ' ')
}
