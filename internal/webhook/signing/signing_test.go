package signing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	body = []byte(`{"a":1}`)
	at   = time.Unix(1740824130, 0)
)

// The vector was computed outside Go:
//
//	printf '1740824130.{"a":1}' | openssl dgst -sha256 -hmac topsecret
const vector = "t=1740824130,v1=9350014f6d72170f7a71d2e4d47900a48a97968fd0d56a15190184f9b048e8a6"

func TestSignMatchesIndependentVector(t *testing.T) {
	if got := Sign([]byte("topsecret"), body, at); got != vector {
		t.Fatalf("Sign = %q, want %q", got, vector)
	}
}

func TestVerify(t *testing.T) {
	other := Sign([]byte("new-secret"), body, at)
	cases := []struct {
		name    string
		header  string
		body    []byte
		secrets []string
		now     time.Time
		want    error
	}{
		{"valid", vector, body, []string{"topsecret"}, at, nil},
		{"rotation: old secret still accepted", vector, body, []string{"new-secret", "topsecret"}, at, nil},
		{"rotation: new secret accepted", other, body, []string{"topsecret", "new-secret"}, at, nil},
		{"two v1 digests, second matches", "t=1740824130,v1=" + strings.Repeat("0", 64) + "," + vector[len("t=1740824130,"):], body, []string{"topsecret"}, at, nil},
		{"unknown scheme ignored", vector + ",v2=zz", body, []string{"topsecret"}, at, nil},
		{"wrong secret", vector, body, []string{"nope"}, at, ErrMismatch},
		{"no secrets", vector, body, nil, at, ErrMismatch},
		{"body changed", vector, []byte(`{"a":2}`), []string{"topsecret"}, at, ErrMismatch},
		{"timestamp changed", strings.Replace(vector, "t=1740824130", "t=1740824131", 1), body, []string{"topsecret"}, at, ErrMismatch},
		{"too old", vector, body, []string{"topsecret"}, at.Add(301 * time.Second), ErrExpired},
		{"from the future", vector, body, []string{"topsecret"}, at.Add(-301 * time.Second), ErrExpired},
		{"edge of window", vector, body, []string{"topsecret"}, at.Add(300 * time.Second), nil},
		{"missing", "", body, []string{"topsecret"}, at, ErrMissing},
		{"no v1", "t=1740824130", body, []string{"topsecret"}, at, ErrMalformed},
		{"no t", vector[len("t=1740824130,"):], body, []string{"topsecret"}, at, ErrMalformed},
		{"t not a number", "t=abc,v1=" + strings.Repeat("0", 64), body, []string{"topsecret"}, at, ErrMalformed},
		{"short digest", "t=1740824130,v1=abcd", body, []string{"topsecret"}, at, ErrMalformed},
		{"no equals", "garbage", body, []string{"topsecret"}, at, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.header, c.body, c.secrets, DefaultMaxAge, c.now)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyWithoutWindow(t *testing.T) {
	if err := Verify(vector, body, []string{"topsecret"}, 0, at.Add(24*time.Hour)); err != nil {
		t.Fatalf("maxAge 0 must skip the window: %v", err)
	}
}

func TestSignRoundTrip(t *testing.T) {
	now := time.Now()
	h := Sign([]byte("k"), []byte("payload"), now)
	if err := Verify(h, []byte("payload"), []string{"k"}, time.Minute, now); err != nil {
		t.Fatal(err)
	}
}
