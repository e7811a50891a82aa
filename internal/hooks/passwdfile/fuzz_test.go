package passwdfile

import (
	"encoding/base64"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Bounds on the hashes the fuzz targets verify. parseHash accepts up to
// 1 GiB and 100 passes, which is right for an operator's file and ruinous
// for a fuzzer running thousands of inputs a second.
const (
	fuzzMaxMemory     = 256 // KiB
	fuzzMaxTime       = 3
	fuzzMaxBcryptCost = 5
)

// cheapArgon returns an argon2id hash of password with the smallest
// parameters parseHash accepts, so the fuzz targets can write a verifiable
// entry without paying for OWASP's.
func cheapArgon(password string) string {
	salt := []byte("fuzzsalt")
	key := argon2.IDKey([]byte(password), salt, 1, 8, 1, minArgonKeyLen)
	return phc(&argonHash{memory: 8, time: 1, threads: 1, salt: salt, key: key})
}

// phc writes h in the canonical PHC form that HashArgon2id produces.
func phc(h *argonHash) string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// FuzzParse feeds arbitrary bytes to the password-file parser, and edits
// what parses with SetUser and DeleteUser. Nothing may panic; an error
// names the file and a line and does not repeat that line's hash; every
// user a parse returns is a valid user name; and editing a file that
// parses gives one that parses to the expected users, because mqttd passwd
// and the plugin must never disagree on what a file says. Seeds live in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, user string) {
		users, err := parseUsers(t, data)
		if err != nil {
			checkParseError(t, data, err)
			return
		}
		n := 0
		for range lines(data) {
			n++
		}
		if len(users) > n {
			t.Fatalf("%d users from %d lines", len(users), n)
		}
		for u := range users {
			if err := ValidUsername(u); err != nil {
				t.Fatalf("parse returned user %q: %v", u, err)
			}
		}

		// Deleting a user leaves every other entry, and that user gone.
		for u := range users {
			out, found := DeleteUser(data, u)
			if !found {
				t.Fatalf("DeleteUser(%q) did not find a user parse returned", u)
			}
			after, err := parseUsers(t, out)
			if err != nil {
				t.Fatalf("after DeleteUser(%q) the file no longer parses: %v\n%q", u, err, out)
			}
			want := maps.Clone(users)
			delete(want, u)
			if got := slices.Sorted(maps.Keys(after)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
				t.Fatalf("after DeleteUser(%q): users %q, want %q", u, got, slices.Sorted(maps.Keys(want)))
			}
			break // one is enough: each costs a parse of the whole input
		}

		// Setting any valid user name gives a file that has that user with
		// the new hash, and every other user as before.
		if ValidUsername(user) != nil {
			return
		}
		out, added := SetUser(data, user, cheapArgon("pw"))
		if _, had := users[user]; added == had {
			t.Fatalf("SetUser(%q) added=%v, but the user was present=%v", user, added, had)
		}
		after, err := parseUsers(t, out)
		if err != nil {
			t.Fatalf("after SetUser(%q) the file no longer parses: %v\n%q", user, err, out)
		}
		h, ok := after[user]
		if !ok {
			t.Fatalf("after SetUser(%q) the file has no such user: %q", user, out)
		}
		if !h.verify([]byte("pw")) {
			t.Fatalf("after SetUser(%q) the user's hash is not the one set", user)
		}
		want := slices.Sorted(maps.Keys(users))
		if added {
			want = slices.Sorted(slices.Values(append(want, user)))
		}
		if got := slices.Sorted(maps.Keys(after)); !slices.Equal(got, want) {
			t.Fatalf("after SetUser(%q): users %q, want %q", user, got, want)
		}
	})
}

// argonFormat is how parse errors show the argon2id hash format.
const argonFormat = "$argon2id$v=19$m=...,t=...,p=...$salt$hash"

// checkParseError requires err to start with F:LINE: and not to contain
// the hash written on that line: parse errors reach logs.
func checkParseError(t *testing.T, data []byte, err error) {
	t.Helper()
	rest, ok := strings.CutPrefix(err.Error(), "F:")
	num, _, ok2 := strings.Cut(rest, ":")
	n, nerr := strconv.Atoi(num)
	if !ok || !ok2 || nerr != nil || n < 1 {
		t.Fatalf("error does not start with F:LINE: %v", err)
	}
	for i, line := range lines(data) {
		if i != n {
			continue
		}
		user, h, ok := entry(line)
		if !ok {
			t.Fatalf("error on line %d, which is blank or a comment: %v", n, err)
		}
		// A short hash can turn up by chance (in a user name it is part
		// of, or in the words of the message), a long one cannot. The
		// formats the messages show are words of the message too: a hash
		// that is the start of one ("$argon2id$v=") is not repeated.
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), errHashKind.Error(), ""), argonFormat, "")
		if len(h) >= 12 && !strings.Contains(user, h) && strings.Contains(msg, h) {
			t.Fatalf("error repeats the hash %q: %v", h, err)
		}
		return
	}
	t.Fatalf("error names line %d, past the end of the file: %v", n, err)
}

// FuzzParseHash feeds arbitrary strings to the hash parser. Nothing may
// panic; a hash that parses must verify without panicking, its canonical
// form must parse to the same hash, and a key computed for its own
// parameters must verify. Hashes with parameters too dear for a fuzz run
// are parsed but not verified. Seeds live in testdata/fuzz/FuzzParseHash.
func FuzzParseHash(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			checkHashError(t, s, err)
			return
		}
		switch h := h.(type) {
		case *argonHash:
			if h.threads < 1 || h.time < 1 || h.memory < 8*uint32(h.threads) || len(h.salt) < minArgonSaltLen ||
				len(h.key) < minArgonKeyLen || len(h.key) > maxArgonKeyLen {
				t.Fatalf("parsed %q to out-of-range parameters %+v", s, h)
			}
			again, err := parseHash(phc(h))
			if err != nil || !reflect.DeepEqual(again, h) {
				t.Fatalf("canonical form %q of %q parses to %+v, %v; want %+v", phc(h), s, again, err, h)
			}
			if h.memory > fuzzMaxMemory || h.time > fuzzMaxTime {
				return
			}
			h.verify([]byte("pw"))
			right := *h
			right.key = argon2.IDKey([]byte("pw"), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
			if !right.verify([]byte("pw")) {
				t.Fatalf("a key computed with %q's parameters does not verify", s)
			}
			if right.verify([]byte("pW")) {
				t.Fatalf("a key computed with %q's parameters verifies another password", s)
			}
		case bcryptHash:
			if string(h) != s {
				t.Fatalf("bcrypt hash %q parsed to %q", s, h)
			}
			if cost, err := bcrypt.Cost(h); err != nil || cost > fuzzMaxBcryptCost {
				return
			}
			h.verify([]byte("pw"))
			h.verify(make([]byte, bcryptMaxPassword+1))
		default:
			t.Fatalf("parseHash(%q) returned a %T", s, h)
		}
	})
}

// argonWords is the fixed text of parseArgon2id's errors.
const argonWords = `the argon2id hash has the wrong number of $-separated fields (want $argon2id$v=19$m=...,t=...,p=...$salt$hash)
the argon2id hash is not version 19 (want v=19 after $argon2id$)
the argon2id parameters are not m=...,t=...,p=... with decimal numbers
is out of range (1 to 255) (1 to 100) (8*p to 1048576 KiB)
the argon2id salt is not unpadded base64 of at least 8 bytes
the argon2id hash is not unpadded base64 of 16 to 1024 bytes`

// checkHashError requires err not to repeat the salt or key of s: the
// parameters may be quoted, what they protect may not. Errors about the
// other kinds quote nothing at all.
func checkHashError(t *testing.T, s string, err error) {
	t.Helper()
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		f := strings.Split(s, "$")
		if len(f) < 6 {
			return
		}
		for _, secret := range f[4:] {
			// Short pieces, and ones the quoted parameters or the
			// message's own words hold, can turn up by chance.
			if len(secret) >= 8 && !strings.Contains(f[3], secret) && !strings.Contains(argonWords, secret) &&
				strings.Contains(err.Error(), secret) {
				t.Fatalf("error repeats %q of the hash: %v", secret, err)
			}
		}
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if want := "the bcrypt hash is malformed (want $2b$COST$ and 53 characters of salt and hash)"; err.Error() != want {
			t.Fatalf("bcrypt error %q, want %q", err, want)
		}
	default:
		if err != errHashKind {
			t.Fatalf("error for an unknown kind of hash: %v", err)
		}
	}
}

// parseUsers parses data as file "F" and returns its users, checking that
// the decoy hash is there exactly when some user is.
func parseUsers(t *testing.T, data []byte) (map[string]hash, error) {
	tab, err := parse("F", data)
	if err != nil {
		return nil, err
	}
	if (tab.decoy == nil) != (len(tab.byName) == 0) {
		t.Fatalf("%d users but decoy %v", len(tab.byName), tab.decoy)
	}
	return tab.byName, nil
}
