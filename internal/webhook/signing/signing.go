// Package signing signs and verifies the bodies of mqttd's plugin requests
// (DESIGN §4): the header
//
//	X-Mqttd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// The timestamp is inside the MAC so a captured request cannot be replayed
// after the receiver's window; the hex digest keeps the header ASCII. The
// broker signs with one secret; a plugin verifies against every secret it
// currently accepts, which is how a secret is rotated without rejecting a
// single request (accept old and new, switch the broker, drop the old).
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
	ErrMalformed = errors.New("malformed " + Header + " header: want t=<unix seconds>,v1=<64 hex digits>")
	ErrExpired   = errors.New("signature timestamp outside the replay window: check both clocks (NTP)")
	ErrMismatch  = errors.New("signature does not match any accepted secret: check that plugin and broker share the secret")
)

// Sign returns the header value for body signed with secret at now.
func Sign(secret, body []byte, now time.Time) string {
	t := strconv.FormatInt(now.Unix(), 10)
	var sum [sha256.Size]byte
	mac(sum[:0], secret, t, body)
	var out [sha256.Size * 2]byte
	hex.Encode(out[:], sum[:])
	return "t=" + t + ",v1=" + string(out[:])
}

// mac appends HMAC-SHA256(secret, t + "." + body) to dst.
func mac(dst, secret []byte, t string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(t))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(dst)
}

// Verify checks header against body. It accepts when the timestamp is
// within maxAge of now (either way: a plugin's clock may run behind) and any
// v1 digest in the header is the HMAC of body under any of secrets. A
// maxAge <= 0 skips the window check, for tests replaying fixed requests.
func Verify(header string, body []byte, secrets []string, maxAge time.Duration, now time.Time) error {
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
	if maxAge > 0 {
		if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
			return fmt.Errorf("%w: signed at %d, now %d, window %s", ErrExpired, ts, now.Unix(), maxAge)
		}
	}
	var want [sha256.Size]byte
	for _, s := range secrets {
		mac(want[:0], []byte(s), t, body)
		for _, got := range sigs {
			if hmac.Equal(want[:], got) {
				return nil
			}
		}
	}
	return ErrMismatch
}

// parse splits "t=..,v1=..[,v1=..]" into the timestamp and the decoded
// digests. Unknown keys are skipped so a later scheme (v2) can be added
// beside v1 without breaking old verifiers.
func parse(header string) (t string, sigs [][]byte, err error) {
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: %q has no '='", ErrMalformed, part)
		}
		switch k {
		case "t":
			t = v
		case "v1":
			sig, derr := hex.DecodeString(v)
			if derr != nil || len(sig) != sha256.Size {
				return "", nil, fmt.Errorf("%w: v1 is not 64 hex digits", ErrMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	if t == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: need both t and v1", ErrMalformed)
	}
	return t, sigs, nil
}
