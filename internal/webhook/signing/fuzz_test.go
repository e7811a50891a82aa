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

// FuzzVerify feeds arbitrary headers, requests (method, path, request id,
// body), secrets and times to Verify and Sign. Nothing may panic; every
// failure wraps one of the exported errors; what Sign produces verifies for
// the same request and secret, inside the window and without one, and not
// for another body, path, method, request id or secret; and a header that
// verifies must carry the digest Sign gives for the header's own timestamp:
// a fuzzer cannot compute an HMAC, so anything else that verifies is a hole
// in Verify. Seeds live in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add("t=1740824130,v2=9f6cf56a67aaa91cfbeb3a441a2fc0f2229a828ea7fe32b1beb5aa3f7db4a305", []byte(`{"a":1}`), "topsecret", int64(1740824130), "POST", "/authenticate", "abc-1")
	f.Add("t=1740824130,v1=9350014f6d72170f7a71d2e4d47900a48a97968fd0d56a15190184f9b048e8a6", []byte(`{"a":1}`), "topsecret", int64(1740824130), "POST", "/authenticate", "abc-1")
	f.Fuzz(func(t *testing.T, header string, body []byte, secret string, ts int64, method, path, id string) {
		now := time.Unix(ts, 0)
		secrets := []string{secret}
		r := Request{Method: method, Path: path, ID: id, Body: body}

		err := Verify(header, r, secrets, 0, now)
		checkErr(t, err)
		windowed := Verify(header, r, secrets, DefaultMaxAge, now)
		checkErr(t, windowed)
		if windowed == nil && err != nil {
			t.Fatalf("%q verifies inside the window but not without one: %v", header, err)
		}
		if err == nil {
			checkSigned(t, header, r, secret)
		}
		if strings.ContainsRune(method+path+id, '\n') {
			return // not a request HTTP can carry; Verify refuses it (checked above)
		}

		signed := Sign([]byte(secret), r, now)
		if err := Verify(signed, r, secrets, 0, now); err != nil {
			t.Fatalf("Sign's %q does not verify: %v", signed, err)
		}
		if err := Verify(signed, r, []string{secret + "x", secret}, DefaultMaxAge, now); err != nil {
			t.Fatalf("Sign's %q does not verify at its own time: %v", signed, err)
		}
		// Away from the ends of time, where Add would wrap, the window
		// holds both ways.
		if ts > -1<<40 && ts < 1<<40 {
			for _, sign := range []time.Duration{1, -1} {
				edge, past := sign*DefaultMaxAge, sign*(DefaultMaxAge+time.Second)
				if err := Verify(signed, r, secrets, DefaultMaxAge, now.Add(edge)); err != nil {
					t.Fatalf("Sign's %q does not verify %v later: %v", signed, edge, err)
				}
				if err := Verify(signed, r, secrets, DefaultMaxAge, now.Add(past)); !errors.Is(err, ErrExpired) {
					t.Fatalf("Sign's %q verified %v later: %v", signed, past, err)
				}
			}
		}
		for what, other := range map[string]Request{
			"body":       {Method: method, Path: path, ID: id, Body: append(bytes.Clone(body), 'x')},
			"path":       {Method: method, Path: path + "x", ID: id, Body: body},
			"method":     {Method: method + "x", Path: path, ID: id, Body: body},
			"request id": {Method: method, Path: path, ID: id + "x", Body: body},
		} {
			if err := Verify(signed, other, secrets, 0, now); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Sign's %q verified another %s: %v", signed, what, err)
			}
		}
		// secret+"x" is a different HMAC key whatever secret is (a zero
		// byte would not be: HMAC pads short keys with zeros).
		if err := Verify(signed, r, []string{secret + "x"}, 0, now); !errors.Is(err, ErrMismatch) {
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

// checkSigned requires header, which verified, to hold among its v2
// digests the one Sign gives for r and secret at the header's t. It
// reads the header on its own rather than through parse, which is part of
// what is under test.
func checkSigned(t *testing.T, header string, r Request, secret string) {
	t.Helper()
	var ts string
	var digests [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v // the last one counts
		case "v2":
			if d, err := hex.DecodeString(v); err == nil {
				digests = append(digests, d)
			}
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("%q verified with t=%q", header, ts)
	}
	_, want, _ := strings.Cut(Sign([]byte(secret), r, time.Unix(n, 0)), ",v2=")
	wantDigest, _ := hex.DecodeString(want)
	for _, d := range digests {
		if bytes.Equal(d, wantDigest) && strconv.FormatInt(n, 10) == ts {
			return
		}
	}
	t.Fatalf("%q verified, but Sign gives v2=%s for its t=%s", header, want, ts)
}
