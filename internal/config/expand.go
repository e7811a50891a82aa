package config

import (
	"fmt"
	"strings"
)

// expandTree replaces ${VAR} and ${VAR:-default} in every string value of
// the parsed file (keys are never expanded), in place.
func (l *loader) expandTree(m map[string]any, prefix string, lookup func(string) (string, bool)) []error {
	var errs []error
	for _, k := range sortedKeys(m) {
		v, key := m[k], join(prefix, k)
		switch x := v.(type) {
		case string:
			s, err := expand(x, lookup)
			if err != nil {
				errs = append(errs, &Error{Source: l.file, Key: key, Msg: err.Error()})
				continue
			}
			m[k] = s
		case map[string]any:
			errs = append(errs, l.expandTree(x, key, lookup)...)
		case []any:
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					if sub, ok := e.(map[string]any); ok {
						errs = append(errs, l.expandTree(sub, fmt.Sprintf("%s[%d]", key, i), lookup)...)
					}
					continue
				}
				s, err := expand(s, lookup)
				if err != nil {
					errs = append(errs, &Error{Source: l.file, Key: fmt.Sprintf("%s[%d]", key, i), Msg: err.Error()})
					continue
				}
				x[i] = s
			}
		}
	}
	return errs
}

// expand resolves the references of one value:
//
//	${VAR}          the value of VAR; an error when VAR is not set
//	${VAR:-default} the value of VAR, or default when VAR is unset or empty
//	$${             a literal "${"
//
// A "$" not followed by "{" is kept as it is, so a password holding "$"
// needs no escaping.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ -> literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: ${ has no closing } (write ${VAR} or ${VAR:-default}; $${ for a literal ${)", s[i:])
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !isEnvName(name) {
			return "", fmt.Errorf("${%s} does not name an environment variable (use letters, digits and _, e.g. ${HOOKS_SECRET})", ref)
		}
		val, ok := lookup(name)
		switch {
		case hasDef && val == "":
			val = def
		case !ok:
			return "", fmt.Errorf("${%s}: environment variable %s is not set (set it, or give a default: ${%s:-value})", name, name, name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func isEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
