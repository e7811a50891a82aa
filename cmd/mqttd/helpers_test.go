package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The port is free again once closed: the kernel may hand it to
		// the next call, and a test taking two (MQTT and admin) would
		// then give the broker one address twice.
		givenMu.Lock()
		taken := given[addr]
		given[addr] = true
		givenMu.Unlock()
		if !taken {
			return addr
		}
	}
	t.Fatal("no loopback port that this test process has not handed out already")
	return ""
}

// given holds the addresses freePort handed out in this process.
var (
	givenMu sync.Mutex
	given   = map[string]bool{}
)

// mqttConnect sends an MQTT 3.1.1 CONNECT on addr and returns the CONNACK.
func mqttConnect(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the MQTT listener: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	connect := []byte{
		0x10, 13, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', 4, // protocol name and level 4 (3.1.1)
		0x02,  // clean session
		0, 30, // keep alive
		0, 1, 'x', // client id
	}
	if _, err := c.Write(connect); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	return ack
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// waitReady polls base/readyz until it answers 200 or, with notReady, until
// it answers 503 with that reason. done ends if the server stops first;
// logs are shown on failure.
func waitReady[T any](t *testing.T, base string, done <-chan T, logs fmt.Stringer, notReady ...string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("mqttd exited before it was ready\n%s", logs)
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case len(notReady) == 0 && resp.StatusCode == http.StatusOK:
				return
			case len(notReady) > 0 && resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), notReady[0]):
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/readyz did not answer 200 within 15s\n%s", base, logs)
}

// serveUntilCleanup runs mqttd on cfg until the test ends, waits until its
// admin listener on adminAddr says ready (or not ready for the reason
// notReady), and returns its log. At cleanup
// it must exit 0.
func serveUntilCleanup(t *testing.T, cfg, adminAddr string, notReady ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	errb := &syncBuffer{}
	done := make(chan struct{})
	var code int
	go func() {
		code = run(ctx, []string{"--config", cfg}, &bytes.Buffer{}, errb)
		close(done)
	}()
	t.Cleanup(func() {
		cancel(fmt.Errorf("test over"))
		<-done
		if code != 0 {
			t.Errorf("exit %d\n%s", code, errb.String())
		}
	})
	waitReady(t, "http://"+adminAddr, done, errb, notReady...)
	return errb
}
