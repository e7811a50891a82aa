package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/testpki"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunUsage(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{args: []string{"version"}, code: 0, out: "mqttd "},
		{args: []string{"help"}, code: 0, out: "usage:"},
		{args: []string{"--help"}, code: 0, out: "usage:"},
		{args: []string{"check-config", "-h"}, code: 0, out: "usage:"},
		{args: []string{"frobnicate"}, code: 2, err: `mqttd: unknown command "frobnicate"`},
		{args: []string{"--bogus"}, code: 2, err: "flag provided but not defined: -bogus"},
		{args: []string{"version", "extra"}, code: 2, err: `unexpected argument "extra"`},
		{args: []string{"--config"}, code: 2, err: "flag needs an argument"},
	} {
		code, out, errs := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.err) {
			t.Errorf("mqttd %v = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	good := writeConfig(t, dir, "listeners:\n  default: {bind: \":1884\"}\nlimits:\n  max-inflight: 16\n")

	// Flags before or after the command.
	for _, args := range [][]string{{"check-config", "--config", good}, {"-c", good, "check-config"}} {
		code, out, errs := runCmd(t, args...)
		if code != 0 || !strings.Contains(out, "max-inflight: 16") || !strings.Contains(out, "bind: :1884") || errs != "" {
			t.Errorf("mqttd %v = %d\nstdout:\n%s\nstderr: %s", args, code, out, errs)
		}
	}

	// No file anywhere: the defaults, which are valid.
	if code, out, _ := runCmd(t, "check-config"); code != 0 || !strings.Contains(out, "source: built-in defaults") {
		t.Errorf("check-config without a file = %d\n%s", code, out)
	}

	// $MQTTD_CONFIG names the file when --config does not.
	t.Setenv("MQTTD_CONFIG", good)
	if code, out, _ := runCmd(t, "check-config"); code != 0 || !strings.Contains(out, "source: "+good) {
		t.Errorf("check-config with MQTTD_CONFIG = %d\n%s", code, out)
	}

	bad := writeConfig(t, t.TempDir(), "limits:\n  max-inflite: 3\n")
	code, out, errs := runCmd(t, "check-config", "--config", bad)
	if code != 2 || out != "" || !strings.Contains(errs, `config: `+bad+`: unknown key "limits.max-inflite"`) {
		t.Errorf("check-config on a bad file = %d, stdout %q, stderr %q", code, out, errs)
	}
	// Starting on a bad file fails the same way.
	if code, _, errs := runCmd(t, "--config", bad); code != 2 || !strings.Contains(errs, "limits.max-inflite") {
		t.Errorf("mqttd on a bad file = %d, stderr %q", code, errs)
	}
}

// run serves until its context ends, then exits 0.
func TestRunServesUntilCancelled(t *testing.T) {
	isolate(t)
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q}
shutdown-grace: 2s
logging: {format: json}
`, mqttAddr, adminAddr))
	ctx, cancel := context.WithCancelCause(context.Background())
	var errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", cfg}, &bytes.Buffer{}, &errb) }()

	waitReady(t, "http://"+adminAddr, done, &errb)
	if ack := mqttConnect(t, mqttAddr); ack[0] != 0x20 || ack[3] != 0 {
		t.Errorf("CONNACK = % x, want 20 02 00 00", ack)
	}
	cancel(fmt.Errorf("test over"))
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return after cancel\n%s", errb.String())
	}
	logs := errb.String()
	for _, want := range []string{`"msg":"listener ready","listener":"default","type":"tcp","tls":false,"addr":"` + mqttAddr + `"`, `"msg":"shutting down","reason":"test over"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if _, err := http.Get("http://" + adminAddr + "/healthz"); err == nil {
		t.Errorf("admin listener still up after run returned")
	}
}

func TestSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancelCause(context.Background())
	var errb syncBuffer
	exited := make(chan int, 1)
	go handleSignals(sigs, cancel, &errb, func(code int) { exited <- code })

	sigs <- syscall.SIGTERM
	<-ctx.Done()
	if got := context.Cause(ctx).Error(); got != "received SIGTERM" {
		t.Errorf("cause = %q, want received SIGTERM", got)
	}
	select {
	case code := <-exited:
		t.Fatalf("first signal exited with %d; it must only start the shutdown", code)
	case <-time.After(50 * time.Millisecond):
	}
	sigs <- os.Interrupt
	select {
	case code := <-exited:
		if code != 1 || !strings.Contains(errb.String(), "second signal (SIGINT)") {
			t.Errorf("second signal: exit %d, stderr %q; want 1 and a message", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not exit")
	}
}

// A listener with tls.client-ca accepts only clients with a certificate
// signed by that CA: the certificates travel from the file to the broker.
func TestRunServesMutualTLS(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	crt, key := testpki.SelfSigned(t, dir, "srv")
	mqttAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
listeners:
  mtls: {bind: %q, tls: {cert: srv.crt, key: srv.key, client-ca: srv.crt}}
admin: {bind: %q}
shutdown-grace: 2s
`, mqttAddr, adminAddr))
	serveUntilCleanup(t, cfg, adminAddr)

	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(must(os.ReadFile(crt)))
	dial := func(certs []tls.Certificate) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", mqttAddr,
			&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'x'})
		ack := make([]byte, 4)
		if _, err := io.ReadFull(c, ack); err != nil {
			return err // TLS 1.3 reports a refused client certificate on the first read
		}
		if ack[0] != 0x20 || ack[3] != 0 {
			return fmt.Errorf("CONNACK % x", ack)
		}
		return nil
	}
	if err := dial([]tls.Certificate{pair}); err != nil {
		t.Errorf("client with a certificate signed by client-ca: %v", err)
	}
	if err := dial(nil); err == nil {
		t.Errorf("client without a certificate was accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
