package passwdfile

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Parameters of new hashes. For argon2id, OWASP's Password Storage Cheat
// Sheet minimum (19 MiB, two passes, one lane), with a 16-byte salt and a
// 32-byte key; for bcrypt, BcryptCost. Existing hashes keep the parameters
// they were written with.
const (
	argonMemory  = 19456 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32

	// BcryptCost is the cost of new bcrypt hashes (OWASP: 10 or more).
	BcryptCost = 10
	// bcryptMaxPassword is the longest password bcrypt reads; it ignores
	// the bytes after it.
	bcryptMaxPassword = 72
)

// Bounds on the argon2id parameters a file may carry. A hash is read from
// an operator's file, but every CONNECT pays for it: m=4194304 would make
// each login allocate 4 GiB.
const (
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonTime    = 100
	minArgonSaltLen = 8
	minArgonKeyLen  = 16
	maxArgonKeyLen  = 1024
)

// hash is a parsed password hash.
type hash interface {
	// verify reports whether password hashes to this hash, in time that
	// does not depend on how much of it matched.
	verify(password []byte) bool
}

// argonHash is an argon2id hash in PHC form.
type argonHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func (h *argonHash) verify(password []byte) bool {
	k := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// bcryptHash is a bcrypt hash in modular crypt form ($2a$, $2b$, $2y$).
type bcryptHash []byte

func (h bcryptHash) verify(password []byte) bool {
	// bcrypt ignores everything after byte 72, so a longer password would
	// match any password sharing its first 72 bytes. Nothing that mqttd
	// passwd hashes is that long; refuse rather than truncate.
	if len(password) > bcryptMaxPassword {
		return false
	}
	// CompareHashAndPassword compares in constant time.
	return bcrypt.CompareHashAndPassword(h, password) == nil
}

// errHashKind is parseHash's answer to a string that is neither kind.
var errHashKind = errors.New("the hash is neither argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) nor bcrypt ($2a$, $2b$ or $2y$)")

// parseHash parses s. Its errors describe what is wrong with s without
// quoting it, so a hash never reaches a log.
func parseHash(s string) (hash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, errors.New("the bcrypt hash is malformed (want $2b$COST$ and 53 characters of salt and hash)")
		}
		return bcryptHash(s), nil
	}
	return nil, errHashKind
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$SALT$KEY, with SALT and
// KEY in unpadded standard base64 (the PHC string format).
func parseArgon2id(s string) (*argonHash, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 {
		return nil, errors.New("the argon2id hash has the wrong number of $-separated fields (want $argon2id$v=19$m=...,t=...,p=...$salt$hash)")
	}
	if f[2] != "v=19" {
		return nil, errors.New("the argon2id hash is not version 19 (want v=19 after $argon2id$)")
	}
	h := &argonHash{}
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return nil, fmt.Errorf("the argon2id parameters %q are not m=...,t=...,p=...", f[3])
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("the argon2id parameters %q are not m=...,t=...,p=... with decimal numbers", f[3])
		}
		switch name {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n < 1 || n > 255 {
				return nil, fmt.Errorf("argon2id p=%d is out of range (1 to 255)", n)
			}
			h.threads = uint8(n)
		}
	}
	if h.time < 1 || h.time > maxArgonTime {
		return nil, fmt.Errorf("argon2id t=%d is out of range (1 to %d)", h.time, maxArgonTime)
	}
	if h.memory < 8*uint32(h.threads) || h.memory > maxArgonMemory {
		return nil, fmt.Errorf("argon2id m=%d is out of range (8*p to %d KiB)", h.memory, maxArgonMemory)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(f[4]); err != nil || len(h.salt) < minArgonSaltLen {
		return nil, fmt.Errorf("the argon2id salt is not unpadded base64 of at least %d bytes", minArgonSaltLen)
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(f[5]); err != nil || len(h.key) < minArgonKeyLen || len(h.key) > maxArgonKeyLen {
		return nil, fmt.Errorf("the argon2id hash is not unpadded base64 of %d to %d bytes", minArgonKeyLen, maxArgonKeyLen)
	}
	return h, nil
}

// HashArgon2id returns a new argon2id hash of password in PHC form, with a
// random salt and OWASP's parameters (m=19456 KiB, t=2, p=1).
func HashArgon2id(password []byte) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// HashBcrypt returns a new bcrypt ($2a$) hash of password at BcryptCost.
// Passwords longer than 72 bytes are refused: bcrypt would ignore the rest.
func HashBcrypt(password []byte) (string, error) {
	if len(password) > bcryptMaxPassword {
		return "", fmt.Errorf("the password is %d bytes long; bcrypt reads only %d (use argon2id, the default, for longer ones)", len(password), bcryptMaxPassword)
	}
	h, err := bcrypt.GenerateFromPassword(password, BcryptCost)
	return string(h), err
}
