package passwdfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The file holds one username:hash entry per line. Lines whose first
// non-blank character is '#' are comments; blank lines are allowed. The
// user name is everything before the first ':' (a name cannot contain one),
// the hash everything after it, surrounding blanks dropped.

// ValidUsername reports what is wrong with name as a user name in a
// password file, or nil. ':' would end the name early; control characters
// (newlines above all) would break the line structure or hide in logs.
func ValidUsername(name string) error {
	if name == "" {
		return errors.New("the user name is empty")
	}
	if strings.ContainsRune(name, ':') {
		return fmt.Errorf("the user name %q contains ':', which separates the name from the hash", name)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("the user name %q contains a control character", name)
	}
	// Any Unicode blank counts, not only ASCII ones: entry trims with
	// strings.TrimSpace, so "\u00a0#x" would be read back as a comment.
	if r, _ := utf8.DecodeRuneInString(name); unicode.IsSpace(r) || r == '#' {
		return fmt.Errorf("the user name %q starts with a blank or '#', which the file would read as indentation or a comment", name)
	}
	return nil
}

// Check reports the first problem that would stop a Plugin from loading
// data as a password file named name, or nil.
func Check(name string, data []byte) error {
	_, err := parse(name, data)
	return err
}

// table is a loaded password file.
type table struct {
	byName map[string]hash
	// decoy is the first entry's hash (nil when there is none): an
	// unknown user's password is verified against it and the result
	// thrown away, so refusing an unknown name costs what a wrong
	// password costs.
	decoy hash
}

// parse reads a password file's contents; name is the file name used in
// errors. Each error names the line and what is wrong with it, never its
// hash.
func parse(name string, data []byte) (*table, error) {
	users := &table{byName: make(map[string]hash)}
	firstLine := make(map[string]int)
	for n, line := range lines(data) {
		user, h, ok := entry(line)
		if !ok {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: "+format, append([]any{name, n}, args...)...)
		}
		if !strings.Contains(line, ":") {
			return nil, fail("no ':' between user name and hash (want username:hash; add users with: mqttd passwd %s USER)", name)
		}
		if err := ValidUsername(user); err != nil {
			return nil, fail("%v", err)
		}
		if prev, dup := firstLine[user]; dup {
			return nil, fail("user %q is already defined on line %d (remove one of the two)", user, prev)
		}
		parsed, err := parseHash(h)
		if err != nil {
			return nil, fail("user %q: %v (set a new password with: mqttd passwd %s %s)", user, err, name, quoteArg(user))
		}
		users.byName[user] = parsed
		firstLine[user] = n
		if users.decoy == nil {
			users.decoy = parsed
		}
	}
	return users, nil
}

// lines yields the lines of data numbered from 1, without their line
// ending ("\n" or "\r\n").
func lines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		for n := 1; len(data) > 0; n++ {
			line, rest, _ := bytes.Cut(data, []byte("\n"))
			if !yield(n, string(bytes.TrimSuffix(line, []byte("\r")))) {
				return
			}
			data = rest
		}
	}
}

// entry splits an entry line into user name and hash; ok is false for
// comments and blank lines.
func entry(line string) (user, hash string, ok bool) {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || trimmed[0] == '#' {
		return "", "", false
	}
	user, hash, _ = strings.Cut(line, ":")
	return user, strings.TrimSpace(hash), true
}

// quoteArg quotes a user name for a shell command line when it needs it.
func quoteArg(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '@' || unicode.IsLetter(r) || unicode.IsDigit(r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SetUser returns data with user's entry set to hash: the entry is
// replaced where it stands (any later duplicate is removed), or appended.
// Comments, blank lines and other entries are kept as they are. added
// reports whether the user was new.
func SetUser(data []byte, user, hash string) (out []byte, added bool) {
	return edit(data, user, user+":"+hash)
}

// DeleteUser returns data without user's entry; found reports whether it
// had one.
func DeleteUser(data []byte, user string) (out []byte, found bool) {
	out, missing := edit(data, user, "")
	return out, !missing
}

// edit replaces the first entry of user with repl (dropping it when repl
// is empty) and drops any later one. missing reports that there was none;
// then a non-empty repl is appended. Every other line is copied byte for
// byte, its line ending included.
func edit(data []byte, user, repl string) (out []byte, missing bool) {
	missing = true
	out = make([]byte, 0, len(data)+len(repl)+2)
	for _, raw := range bytes.SplitAfter(data, []byte("\n")) {
		line := strings.TrimRight(string(raw), "\r\n")
		if u, _, ok := entry(line); !ok || u != user {
			out = append(out, raw...)
			continue
		}
		if missing && repl != "" {
			out = append(append(out, repl...), raw[len(line):]...) // keep this line's ending
		}
		missing = false
	}
	if missing && repl != "" {
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(append(out, repl...), '\n')
	}
	return out, missing
}
