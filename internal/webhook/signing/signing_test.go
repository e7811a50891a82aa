package signing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	req = Request{Method: "POST", Path: "/authenticate", ID: "abc-1", Body: []byte(`{"a":1}`)}
	at  = time.Unix(1740824130, 0)
)

// The vector was computed outside Go:
//
//	printf '1740824130\nPOST\n/authenticate\nabc-1\n{"a":1}' | openssl dgst -sha256 -hmac topsecret
const vector = "t=1740824130,v2=9f6cf56a67aaa91cfbeb3a441a2fc0f2229a828ea7fe32b1beb5aa3f7db4a305"

// v1 is the first scheme's header for the same body and time (t + "." +
// body alone), which Verify no longer accepts.
const v1 = "t=1740824130,v1=9350014f6d72170f7a71d2e4d47900a48a97968fd0d56a15190184f9b048e8a6"

func TestSignMatchesIndependentVector(t *testing.T) {
	if got := Sign([]byte("topsecret"), req, at); got != vector {
		t.Fatalf("Sign = %q, want %q", got, vector)
	}
}

func TestVerify(t *testing.T) {
	other := Sign([]byte("new-secret"), req, at)
	with := func(edit func(*Request)) Request {
		r := req
		edit(&r)
		return r
	}
	cases := []struct {
		name    string
		header  string
		req     Request
		secrets []string
		now     time.Time
		want    error
	}{
		{"valid", vector, req, []string{"topsecret"}, at, nil},
		{"rotation: old secret still accepted", vector, req, []string{"new-secret", "topsecret"}, at, nil},
		{"rotation: new secret accepted", other, req, []string{"topsecret", "new-secret"}, at, nil},
		{"two v2 digests, second matches", "t=1740824130,v2=" + strings.Repeat("0", 64) + "," + vector[len("t=1740824130,"):], req, []string{"topsecret"}, at, nil},
		{"unknown scheme ignored", vector + ",v3=zz", req, []string{"topsecret"}, at, nil},
		{"v1 alone is not enough", v1, req, []string{"topsecret"}, at, ErrMalformed},
		{"v1 beside a wrong v2", v1 + ",v2=" + strings.Repeat("0", 64), req, []string{"topsecret"}, at, ErrMismatch},
		{"wrong secret", vector, req, []string{"nope"}, at, ErrMismatch},
		{"no secrets", vector, req, nil, at, ErrMismatch},
		{"body changed", vector, with(func(r *Request) { r.Body = []byte(`{"a":2}`) }), []string{"topsecret"}, at, ErrMismatch},
		{"another path", vector, with(func(r *Request) { r.Path = "/topic_filtering" }), []string{"topsecret"}, at, ErrMismatch},
		{"another method", vector, with(func(r *Request) { r.Method = "PUT" }), []string{"topsecret"}, at, ErrMismatch},
		{"another request id", vector, with(func(r *Request) { r.ID = "abc-2" }), []string{"topsecret"}, at, ErrMismatch},
		{"fields shifted", vector, with(func(r *Request) { r.Path, r.ID = "/authenticate\nabc-1", "" }), []string{"topsecret"}, at, ErrMalformed},
		{"timestamp changed", strings.Replace(vector, "t=1740824130", "t=1740824131", 1), req, []string{"topsecret"}, at, ErrMismatch},
		{"too old", vector, req, []string{"topsecret"}, at.Add(301 * time.Second), ErrExpired},
		{"from the future", vector, req, []string{"topsecret"}, at.Add(-301 * time.Second), ErrExpired},
		{"edge of window", vector, req, []string{"topsecret"}, at.Add(300 * time.Second), nil},
		{"missing", "", req, []string{"topsecret"}, at, ErrMissing},
		{"no v2", "t=1740824130", req, []string{"topsecret"}, at, ErrMalformed},
		{"no t", vector[len("t=1740824130,"):], req, []string{"topsecret"}, at, ErrMalformed},
		{"t not a number", "t=abc,v2=" + strings.Repeat("0", 64), req, []string{"topsecret"}, at, ErrMalformed},
		{"short digest", "t=1740824130,v2=abcd", req, []string{"topsecret"}, at, ErrMalformed},
		{"no equals", "garbage", req, []string{"topsecret"}, at, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.header, c.req, c.secrets, DefaultMaxAge, c.now)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyWithoutWindow(t *testing.T) {
	if err := Verify(vector, req, []string{"topsecret"}, 0, at.Add(24*time.Hour)); err != nil {
		t.Fatalf("maxAge 0 must skip the window: %v", err)
	}
}

func TestSignRoundTrip(t *testing.T) {
	now := time.Now()
	r := Request{Method: "GET", Path: "/manifest", ID: "x-1"}
	h := Sign([]byte("k"), r, now)
	if err := Verify(h, r, []string{"k"}, time.Minute, now); err != nil {
		t.Fatal(err)
	}
}
