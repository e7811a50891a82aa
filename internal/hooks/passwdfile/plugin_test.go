package passwdfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Hashes made by other implementations, so the file format is the one the
// rest of the world writes: the reference argon2 command line tool
// (`echo -n "correct horse" | argon2 saltysalt123 -id -t 3 -m 12 -p 2 -l 32 -e`)
// and Apache's htpasswd (`htpasswd -nbB -C 5 bob "battery staple"`).
const (
	refArgon2id = "$argon2id$v=19$m=4096,t=3,p=2$c2FsdHlzYWx0MTIz$wbCRRsaZjnBtCqEfy/OYsqCoWSld37U5rVJhk7GK7Wo"
	refBcrypt2y = "$2y$05$QxZQ.Y1f9CNqPX7tpA.yYeh78JZ6RQxsE7hanj0MVCZ2Bp2M7OMKm"
)

func mustHash(t testing.TB, f func([]byte) (string, error), pw string) string {
	t.Helper()
	h, err := f([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func auth(p *Plugin, user, pw string) (hooks.Decision, error) {
	req := &hooks.AuthRequest{Client: &mqtt.ClientInfo{ClientID: "c", Username: user}}
	if pw != "\x00none" {
		req.Password = []byte(pw)
	}
	return p.Authenticate(context.Background(), req)
}

// Every answer of Authenticate: the client without a user name is someone
// else's call (Ignore); a known user is allowed only with the right
// password, and everyone else is denied with 0x86, a user the file does not
// know with the very answer a wrong password gets.
func TestAuthenticateDecisions(t *testing.T) {
	argonNew := mustHash(t, HashArgon2id, "fresh-argon")
	bcryptNew := mustHash(t, HashBcrypt, "fresh-bcrypt")
	long := strings.Repeat("x", 72)
	bcryptLong := mustHash(t, HashBcrypt, long)
	path := hookstest.WriteFile(t, "passwd", "# users\n\nalice:"+refArgon2id+"\nbob:"+refBcrypt2y+"\r\n"+
		"carol:"+argonNew+"\n  # indented comment\ndave:"+bcryptNew+"\nerin:"+bcryptLong+"\n"+
		"user with spaces:"+argonNew+"\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if p.Users() != 6 {
		t.Fatalf("Users() = %d, want 6", p.Users())
	}
	allow := hooks.Decision{Result: hooks.Allow}
	badPW := hooks.Decision{Result: hooks.Deny, ReasonCode: 0x86, Reason: "bad user name or password"}
	for _, tc := range []struct {
		name, user, pw string
		want           hooks.Decision
	}{
		{"no user name", "", "whatever", hooks.Decision{}},
		{"unknown user", "mallory", "correct horse", badPW},
		{"unknown user without a password", "mallory", "\x00none", hooks.Decision{Result: hooks.Deny, ReasonCode: 0x86, Reason: "password required"}},
		{"user names are case sensitive", "Alice", "correct horse", badPW},
		{"argon2id from the reference tool", "alice", "correct horse", allow},
		{"argon2id wrong password", "alice", "correct horsE", badPW},
		{"argon2id empty password", "alice", "", badPW},
		{"bcrypt $2y$ from htpasswd", "bob", "battery staple", allow},
		{"bcrypt wrong password", "bob", "battery", badPW},
		{"new argon2id", "carol", "fresh-argon", allow},
		{"new bcrypt", "dave", "fresh-bcrypt", allow},
		{"new bcrypt wrong", "dave", "fresh-argon", badPW},
		{"bcrypt at 72 bytes", "erin", long, allow},
		// bcrypt would read only the first 72 bytes and say yes.
		{"bcrypt past 72 bytes", "erin", long + "tail", badPW},
		{"name with spaces", "user with spaces", "fresh-argon", allow},
		{"no password", "alice", "\x00none", hooks.Decision{Result: hooks.Deny, ReasonCode: 0x86, Reason: "password required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth(p, tc.user, tc.pw)
			if err != nil || got != tc.want {
				t.Errorf("Authenticate(%q) = %+v, %v; want %+v", tc.user, got, err, tc.want)
			}
		})
	}
}

// The exact errors for bad files: each names the file and line, says what
// is wrong and how to fix it, and never quotes a hash.
func TestParseErrors(t *testing.T) {
	good := "ok:" + refBcrypt2y + "\n"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no colon", good + "alice\n",
			`F:2: no ':' between user name and hash (want username:hash; add users with: mqttd passwd F USER)`},
		{"empty user", "# x\n:" + refBcrypt2y + "\n",
			`F:2: the user name is empty`},
		{"control character", "al\x01ice:" + refBcrypt2y + "\n",
			`F:1: the user name "al\x01ice" contains a control character`},
		{"leading blank", " alice:" + refBcrypt2y + "\n",
			`F:1: the user name " alice" starts with a blank or '#', which the file would read as indentation or a comment`},
		{"duplicate", good + "\nok:" + refArgon2id + "\n",
			`F:3: user "ok" is already defined on line 1 (remove one of the two)`},
		{"empty hash", "alice:\n",
			`F:1: user "alice": the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$) (set a new password with: mqttd passwd F alice)`},
		{"plain text password", "alice:hunter2\n",
			`F:1: user "alice": the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$) (set a new password with: mqttd passwd F alice)`},
		{"argon2i is not argon2id", "alice:$argon2i$v=19$m=4096,t=3,p=1$c2FsdHlzYWx0$aGFzaGhhc2hoYXNoaGFzaA\n",
			`F:1: user "alice": the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$) (set a new password with: mqttd passwd F alice)`},
		{"unquoted shell name", "o'neil:x\n",
			`F:1: user "o'neil": the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$) (set a new password with: mqttd passwd F 'o'\''neil')`},
		{"argon2 fields", "a:$argon2id$v=19$m=4096,t=3,p=2$c2FsdHlzYWx0MTIz\n",
			`F:1: user "a": the argon2id hash has the wrong number of $-separated fields (want $argon2id$v=19$m=...,t=...,p=...$salt$hash) (set a new password with: mqttd passwd F a)`},
		{"argon2 version", "a:" + strings.Replace(refArgon2id, "v=19", "v=16", 1) + "\n",
			`F:1: user "a": the argon2id hash is not version 19 (want v=19 after $argon2id$) (set a new password with: mqttd passwd F a)`},
		{"argon2 params order", "a:" + strings.Replace(refArgon2id, "m=4096,t=3", "t=3,m=4096", 1) + "\n",
			`F:1: user "a": the argon2id parameters "t=3,m=4096,p=2" are not m=...,t=...,p=... with decimal numbers (set a new password with: mqttd passwd F a)`},
		{"argon2 params count", "a:" + strings.Replace(refArgon2id, ",p=2", "", 1) + "\n",
			`F:1: user "a": the argon2id parameters "m=4096,t=3" are not m=...,t=...,p=... (set a new password with: mqttd passwd F a)`},
		{"argon2 huge memory", "a:" + strings.Replace(refArgon2id, "m=4096", "m=4194304", 1) + "\n",
			`F:1: user "a": argon2id m=4194304 is out of range (8*p to 1048576 KiB) (set a new password with: mqttd passwd F a)`},
		{"argon2 memory below 8p", "a:" + strings.Replace(refArgon2id, "m=4096", "m=15", 1) + "\n",
			`F:1: user "a": argon2id m=15 is out of range (8*p to 1048576 KiB) (set a new password with: mqttd passwd F a)`},
		{"argon2 zero time", "a:" + strings.Replace(refArgon2id, "t=3", "t=0", 1) + "\n",
			`F:1: user "a": argon2id t=0 is out of range (1 to 100) (set a new password with: mqttd passwd F a)`},
		{"argon2 zero lanes", "a:" + strings.Replace(refArgon2id, "p=2", "p=0", 1) + "\n",
			`F:1: user "a": argon2id p=0 is out of range (1 to 255) (set a new password with: mqttd passwd F a)`},
		{"argon2 padded salt", "a:" + strings.Replace(refArgon2id, "MTIz$", "MTIz==$", 1) + "\n",
			`F:1: user "a": the argon2id salt is not unpadded base64 of at least 8 bytes (set a new password with: mqttd passwd F a)`},
		{"argon2 short key", "a:$argon2id$v=19$m=4096,t=3,p=2$c2FsdHlzYWx0MTIz$c2hvcnQ\n",
			`F:1: user "a": the argon2id hash is not unpadded base64 of 16 to 1024 bytes (set a new password with: mqttd passwd F a)`},
		{"bcrypt truncated", "a:" + refBcrypt2y[:40] + "\n",
			`F:1: user "a": the bcrypt hash is malformed (want $2b$COST$ and 53 characters of salt and hash) (set a new password with: mqttd passwd F a)`},
		{"bcrypt cost", "a:" + strings.Replace(refBcrypt2y, "$05$", "$99$", 1) + "\n",
			`F:1: user "a": the bcrypt hash is malformed (want $2b$COST$ and 53 characters of salt and hash) (set a new password with: mqttd passwd F a)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("F", []byte(tc.data))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("parse error\n got %v\nwant %s", err, tc.want)
			}
			if h := tc.data[strings.IndexByte(tc.data, ':')+1:]; len(h) > 20 && strings.Contains(err.Error(), strings.TrimSpace(h)[10:]) {
				t.Errorf("the error quotes the hash: %v", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil || err.Error() != "password-file: no file given (set file: PATH, a file written by mqttd passwd)" {
		t.Errorf("New without a file: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	want := "password-file: open " + missing + ": no such file or directory (create it with: mqttd passwd " + missing + " USER)"
	if _, err := New(Options{File: missing}); err == nil || err.Error() != want {
		t.Errorf("New with a missing file:\n got %v\nwant %s", err, want)
	}
	path := hookstest.WriteFile(t, "pw", "x\n")
	if _, err := New(Options{File: path}); err == nil || !strings.HasPrefix(err.Error(), "password-file: "+path+":1: no ':'") {
		t.Errorf("New with a bad file: %v", err)
	}
	if p, err := New(Options{File: hookstest.WriteFile(t, "empty", "")}); err != nil || p.Users() != 0 {
		t.Errorf("an empty file should load with no users: %v", err)
	}
}

// Reload applies a good file at once and keeps the old entries when the
// new file is broken.
func TestReload(t *testing.T) {
	path := hookstest.WriteFile(t, "passwd", "bob:"+refBcrypt2y+"\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := auth(p, "bob", "battery staple"); d.Result != hooks.Allow {
		t.Fatalf("before reload: %+v", d)
	}
	os.WriteFile(path, []byte("alice:"+refArgon2id+"\n"), 0o600)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if d, _ := auth(p, "bob", "battery staple"); d.Result != hooks.Deny {
		t.Errorf("bob was removed from the file but got %+v", d)
	}
	if d, _ := auth(p, "alice", "correct horse"); d.Result != hooks.Allow {
		t.Errorf("alice was added but got %+v", d)
	}

	os.WriteFile(path, []byte("alice:"+refArgon2id+"\nbob:plaintext\n"), 0o600)
	err = p.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), "password-file: "+path+":2: user \"bob\": the hash is neither") {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if d, _ := auth(p, "alice", "correct horse"); d.Result != hooks.Allow {
		t.Errorf("after a failed reload the previous entries must stay: %+v", d)
	}
	os.Remove(path)
	if err := p.Reload(); err == nil || p.Users() != 1 {
		t.Errorf("Reload of a removed file: %v, %d users", err, p.Users())
	}
}

// Prepare reads the file but changes nothing until its commit runs, so a
// reload of several plugins can give up without having applied any.
func TestPrepareAppliesOnCommit(t *testing.T) {
	path := hookstest.WriteFile(t, "passwd", "bob:"+refBcrypt2y+"\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("alice:"+refArgon2id+"\n"), 0o600)
	commit, err := p.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := auth(p, "bob", "battery staple"); d.Result != hooks.Allow {
		t.Fatalf("a prepared, uncommitted file already applies: bob got %+v", d)
	}
	commit()
	if d, _ := auth(p, "bob", "battery staple"); d.Result != hooks.Deny {
		t.Errorf("after commit bob, removed, got %+v", d)
	}
	if d, _ := auth(p, "alice", "correct horse"); d.Result != hooks.Allow {
		t.Errorf("after commit alice, added, got %+v", d)
	}
	os.WriteFile(path, []byte("bob:plaintext\n"), 0o600)
	if commit, err := p.Prepare(); err == nil || commit != nil {
		t.Errorf("Prepare of a broken file: %v, commit %v", err, commit != nil)
	}
}

// With every verification slot taken, a CONNECT waits for one, and gives up
// with its context's cause when the context ends first.
func TestAuthenticateWaitsForSlotAndHonoursContext(t *testing.T) {
	p, err := New(Options{File: hookstest.WriteFile(t, "passwd", "bob:"+refBcrypt2y+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	for range cap(p.sem) {
		p.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("client went away")
	type result struct {
		d   hooks.Decision
		err error
	}
	done := make(chan result)
	go func() {
		d, err := p.Authenticate(ctx, &hooks.AuthRequest{Client: &mqtt.ClientInfo{Username: "bob"}, Password: []byte("battery staple")})
		done <- result{d, err}
	}()
	cancel(cause)
	r := <-done
	if !errors.Is(r.err, cause) || r.d.Result != hooks.Ignore {
		t.Fatalf("Authenticate with every slot taken and ctx ended = %+v, %v; want an error wrapping %q", r.d, r.err, cause)
	}

	// A freed slot lets a waiting check through.
	go func() {
		d, err := p.Authenticate(context.Background(), &hooks.AuthRequest{Client: &mqtt.ClientInfo{Username: "bob"}, Password: []byte("battery staple")})
		done <- result{d, err}
	}()
	<-p.sem
	if r := <-done; r.err != nil || r.d.Result != hooks.Allow {
		t.Fatalf("after a slot was freed: %+v, %v", r.d, r.err)
	}
	if len(p.sem) != cap(p.sem)-1 {
		t.Errorf("the check did not give its slot back: %d of %d taken", len(p.sem), cap(p.sem))
	}
}

func TestValidUsername(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"alice", ""},
		{"ünïcødé user", ""},
		{"a#b", ""},
		{"", "the user name is empty"},
		{"a:b", `the user name "a:b" contains ':', which separates the name from the hash`},
		{"a\nb", `the user name "a\nb" contains a control character`},
		{"a\x7fb", `the user name "a\x7fb" contains a control character`},
		{"#root", `the user name "#root" starts with a blank or '#', which the file would read as indentation or a comment`},
		{"\tx", `the user name "\tx" contains a control character`},
		{"\u00a0#x", `the user name "\u00a0#x" starts with a blank or '#', which the file would read as indentation or a comment`},
	} {
		err := ValidUsername(tc.name)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("ValidUsername(%q) = %q, want %q", tc.name, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("ValidUsername(%q) = nil, want %q", tc.name, tc.want)
		}
	}
}

// SetUser and DeleteUser touch only the user's own line: comments, blank
// lines, other entries and line endings stay byte for byte.
func TestSetDeleteUser(t *testing.T) {
	const file = "# header\r\nalice:A\r\n\n  # note\nbob:B\ncarol:C"
	for _, tc := range []struct {
		name, op, user, in, want string
		changed                  bool // added for set, found for delete
	}{
		{"replace keeps CRLF", "set", "alice", file, "# header\r\nalice:NEW\r\n\n  # note\nbob:B\ncarol:C", false},
		{"replace last line without newline", "set", "carol", file, "# header\r\nalice:A\r\n\n  # note\nbob:B\ncarol:NEW", false},
		{"append after a missing newline", "set", "dave", file, file + "\ndave:NEW\n", true},
		{"append to an empty file", "set", "dave", "", "dave:NEW\n", true},
		{"a comment naming the user is not an entry", "set", "x", "#x:1\n", "#x:1\nx:NEW\n", true},
		{"duplicates collapse to one", "set", "bob", "bob:1\na:2\nbob:3\n", "bob:NEW\na:2\n", false},
		{"delete", "delete", "bob", file, "# header\r\nalice:A\r\n\n  # note\ncarol:C", true},
		{"delete last", "delete", "carol", file, "# header\r\nalice:A\r\n\n  # note\nbob:B\n", true},
		{"delete missing", "delete", "zed", file, file, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out []byte
			var changed bool
			if tc.op == "set" {
				out, changed = SetUser([]byte(tc.in), tc.user, "NEW")
			} else {
				out, changed = DeleteUser([]byte(tc.in), tc.user)
			}
			if string(out) != tc.want || changed != tc.changed {
				t.Errorf("%s %s:\n got %q, %v\nwant %q, %v", tc.op, tc.user, out, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestHashBcryptTooLong(t *testing.T) {
	_, err := HashBcrypt([]byte(strings.Repeat("p", 73)))
	if err == nil || err.Error() != "the password is 73 bytes long; bcrypt reads only 72 (use argon2id, the default, for longer ones)" {
		t.Errorf("HashBcrypt of 73 bytes: %v", err)
	}
}

// New argon2id hashes carry OWASP's parameters and a fresh salt each time.
func TestHashArgon2idParameters(t *testing.T) {
	a, b := mustHash(t, HashArgon2id, "pw"), mustHash(t, HashArgon2id, "pw")
	if !strings.HasPrefix(a, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("new hash %q does not carry m=19456,t=2,p=1", a)
	}
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	h, err := parseHash(a)
	if err != nil || !h.verify([]byte("pw")) || h.verify([]byte("pW")) {
		t.Errorf("a new hash does not round-trip: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name string
		hash func([]byte) (string, error)
	}{
		{"argon2id-m19456-t2-p1", HashArgon2id},
		{"bcrypt-cost10", HashBcrypt},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := New(Options{File: hookstest.WriteFile(b, "passwd", "u:"+mustHash(b, bc.hash, "pw")+"\n")})
			if err != nil {
				b.Fatal(err)
			}
			req := &hooks.AuthRequest{Client: &mqtt.ClientInfo{Username: "u"}, Password: []byte("pw")}
			b.ReportAllocs()
			for b.Loop() {
				if d, _ := p.Authenticate(context.Background(), req); d.Result != hooks.Allow {
					b.Fatal(d)
				}
			}
		})
	}
}

// An unknown user name costs a verification like a listed one (it queues
// for a slot, then hashes against the decoy), so the time to the answer does
// not tell which names exist; with an empty file there is nothing to hash.
func TestUnknownUserHashesLikeAKnownOne(t *testing.T) {
	p, err := New(Options{File: hookstest.WriteFile(t, "passwd", "bob:"+refBcrypt2y+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	for range cap(p.sem) {
		p.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := &hooks.AuthRequest{Client: &mqtt.ClientInfo{Username: "mallory"}, Password: []byte("battery staple")}
	if d, err := p.Authenticate(ctx, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("unknown user with every slot taken: %+v, %v; want it to wait for a slot like a known user", d, err)
	}
	for range cap(p.sem) {
		<-p.sem
	}
	// The decoy is bob's hash: bob's password does not let mallory in.
	if d, err := p.Authenticate(context.Background(), req); err != nil || d.Result != hooks.Deny {
		t.Fatalf("unknown user with a listed user's password: %+v, %v", d, err)
	}

	empty, err := New(Options{File: hookstest.WriteFile(t, "passwd", "# nobody yet\n")})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := empty.Authenticate(ctx, req); err != nil || d.Result != hooks.Deny || d.ReasonCode != ReasonBadCredentials {
		t.Fatalf("unknown user, empty file: %+v, %v", d, err)
	}
}
