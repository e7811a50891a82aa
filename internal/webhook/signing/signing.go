// Package signing signs and verifies mqttd's plugin requests (the contract
// is in api/openapi.yaml, "Headers and signatures"): the header
//
//	X-Mqttd-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, t LF method LF path LF request id LF body)>
//
// where LF is one newline byte, method is the HTTP method ("POST"), path is
// the request path as sent (with the base path of the alias's url, without
// a query) and request id is the X-Mqttd-Request-Id header. The timestamp
// is inside the MAC so a captured request cannot be replayed after the
// receiver's window; method and path, so it cannot be replayed to another
// endpoint; the request id, so a receiver that remembers the ids it saw
// within the window refuses a verbatim replay inside it too. None of
// method, path, id and t can hold a newline, so the fields cannot be
// shifted into one another. The hex digest keeps the header ASCII.
//
// The first scheme, v1, covered t and the body alone. The broker no longer
// sends it, and Verify ignores it: a v1 digest binds no endpoint, so
// accepting it would let a replay downgrade. A plugin that still checks
// only v1 refuses every signed request (it finds no v1), failing closed.
//
// The broker signs with one secret; a plugin verifies against every secret
// it currently accepts, which is how a secret is rotated without rejecting
// a single request (accept old and new, switch the broker, drop the old).
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header is the name of the signature header.
const Header = "X-Mqttd-Signature"

// DefaultMaxAge is the replay window the protocol recommends to plugins.
const DefaultMaxAge = 300 * time.Second

// Verification failures. Verify wraps one of them, so a plugin can tell a
// clock problem (ErrExpired) from a wrong secret (ErrMismatch).
var (
	ErrMissing   = errors.New("no " + Header + " header: set the alias's secret on the broker, or stop requiring signatures")
	ErrMalformed = errors.New("malformed " + Header + " header: want t=<unix seconds>,v2=<64 hex digits>")
	ErrExpired   = errors.New("signature timestamp outside the replay window: check both clocks (NTP)")
	ErrMismatch  = errors.New("signature does not match any accepted secret: check that plugin and broker share the secret")
)

// Request is what a signature covers besides the time: the request as the
// broker sent it.
type Request struct {
	Method string // "POST", "GET"
	Path   string // as on the wire, e.g. "/authenticate" or "/hooks/authenticate"
	ID     string // the X-Mqttd-Request-Id header
	Body   []byte // the raw body; empty for a GET
}

// Sign returns the header value for r signed with secret at now.
func Sign(secret []byte, r Request, now time.Time) string {
	t := strconv.FormatInt(now.Unix(), 10)
	var sum [sha256.Size]byte
	mac(sum[:0], secret, t, r)
	var out [sha256.Size * 2]byte
	hex.Encode(out[:], sum[:])
	return "t=" + t + ",v2=" + string(out[:])
}

// mac appends the v2 HMAC-SHA256 of t and r under secret to dst.
func mac(dst, secret []byte, t string, r Request) []byte {
	h := hmac.New(sha256.New, secret)
	for _, field := range []string{t, r.Method, r.Path, r.ID} {
		h.Write([]byte(field))
		h.Write([]byte{'\n'})
	}
	h.Write(r.Body)
	return h.Sum(dst)
}

// Verify checks header against r. It accepts when the timestamp is within
// maxAge of now (either way: a plugin's clock may run behind) and any v2
// digest in the header is the HMAC of r under any of secrets. A maxAge <= 0
// skips the window check, for tests replaying fixed requests. Verify does
// not remember request ids; a plugin refusing replays inside the window
// keeps the ids it accepted for maxAge.
func Verify(header string, r Request, secrets []string, maxAge time.Duration, now time.Time) error {
	if header == "" {
		return ErrMissing
	}
	t, sigs, err := parse(header)
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: t=%q is not a number", ErrMalformed, t)
	}
	if strings.ContainsRune(r.Method+r.Path+r.ID, '\n') {
		return fmt.Errorf("%w: method, path or request id holds a newline", ErrMalformed)
	}
	if maxAge > 0 {
		if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
			return fmt.Errorf("%w: signed at %d, now %d, window %s", ErrExpired, ts, now.Unix(), maxAge)
		}
	}
	var want [sha256.Size]byte
	for _, s := range secrets {
		mac(want[:0], []byte(s), t, r)
		for _, got := range sigs {
			if hmac.Equal(want[:], got) {
				return nil
			}
		}
	}
	return ErrMismatch
}

// parse splits "t=..,v2=..[,v2=..]" into the timestamp and the decoded
// digests. Unknown keys (v1, or a later scheme) are skipped so a scheme can
// be added beside another without breaking verifiers.
func parse(header string) (t string, sigs [][]byte, err error) {
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: %q has no '='", ErrMalformed, part)
		}
		switch k {
		case "t":
			t = v
		case "v2":
			sig, derr := hex.DecodeString(v)
			if derr != nil || len(sig) != sha256.Size {
				return "", nil, fmt.Errorf("%w: v2 is not 64 hex digits", ErrMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	if t == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: need both t and v2 (a v1-only header is from an older broker)", ErrMalformed)
	}
	return t, sigs, nil
}
