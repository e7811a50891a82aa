package signing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers, bodies, secrets and times to Verify
// and Sign. Nothing may panic; every failure wraps one of the exported
// errors; what Sign produces verifies for the same body and secret, inside
// the window and without one, and not for another body or secret; and a
// header that verifies must carry the digest Sign gives for the header's
// own timestamp: a fuzzer cannot compute an HMAC, so anything else that
// verifies is a hole in Verify. Seeds live in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, header string, body []byte, secret string, ts int64) {
		now := time.Unix(ts, 0)
		secrets := []string{secret}

		err := Verify(header, body, secrets, 0, now)
		checkErr(t, err)
		windowed := Verify(header, body, secrets, DefaultMaxAge, now)
		checkErr(t, windowed)
		if windowed == nil && err != nil {
			t.Fatalf("%q verifies inside the window but not without one: %v", header, err)
		}
		if err == nil {
			checkSigned(t, header, body, secret)
		}

		signed := Sign([]byte(secret), body, now)
		if err := Verify(signed, body, secrets, 0, now); err != nil {
			t.Fatalf("Sign's %q does not verify: %v", signed, err)
		}
		if err := Verify(signed, body, []string{secret + "x", secret}, DefaultMaxAge, now); err != nil {
			t.Fatalf("Sign's %q does not verify at its own time: %v", signed, err)
		}
		// Away from the ends of time, where Add would wrap, the window
		// holds both ways.
		if ts > -1<<40 && ts < 1<<40 {
			for _, sign := range []time.Duration{1, -1} {
				edge, past := sign*DefaultMaxAge, sign*(DefaultMaxAge+time.Second)
				if err := Verify(signed, body, secrets, DefaultMaxAge, now.Add(edge)); err != nil {
					t.Fatalf("Sign's %q does not verify %v later: %v", signed, edge, err)
				}
				if err := Verify(signed, body, secrets, DefaultMaxAge, now.Add(past)); !errors.Is(err, ErrExpired) {
					t.Fatalf("Sign's %q verified %v later: %v", signed, past, err)
				}
			}
		}
		if err := Verify(signed, append(bytes.Clone(body), 'x'), secrets, 0, now); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Sign's %q verified another body: %v", signed, err)
		}
		// secret+"x" is a different HMAC key whatever secret is (a zero
		// byte would not be: HMAC pads short keys with zeros).
		if err := Verify(signed, body, []string{secret + "x"}, 0, now); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Sign's %q verified under another secret: %v", signed, err)
		}
	})
}

// checkErr requires err to be nil or to wrap one of the exported errors,
// which is what plugins switch on.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, e := range []error{ErrMissing, ErrMalformed, ErrExpired, ErrMismatch} {
		if errors.Is(err, e) {
			return
		}
	}
	t.Fatalf("error %v wraps none of the exported errors", err)
}

// checkSigned requires header, which verified, to hold among its v1
// digests the one Sign gives for body and secret at the header's t. It
// reads the header on its own rather than through parse, which is part of
// what is under test.
func checkSigned(t *testing.T, header string, body []byte, secret string) {
	t.Helper()
	var ts string
	var digests [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v // the last one counts
		case "v1":
			if d, err := hex.DecodeString(v); err == nil {
				digests = append(digests, d)
			}
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("%q verified with t=%q", header, ts)
	}
	_, want, _ := strings.Cut(Sign([]byte(secret), body, time.Unix(n, 0)), ",v1=")
	wantDigest, _ := hex.DecodeString(want)
	for _, d := range digests {
		if bytes.Equal(d, wantDigest) && strconv.FormatInt(n, 10) == ts {
			return
		}
	}
	t.Fatalf("%q verified, but Sign gives v1=%s for its t=%s", header, want, ts)
}
