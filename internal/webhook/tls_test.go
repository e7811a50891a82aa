package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/testpki"
)

// selfSigned is a client certificate as the broker would hand it over.
func selfSigned(t *testing.T) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "sensor-17"},
		DNSNames:  []string{"sensor-17.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	authority := testpki.NewCA(t, "test CA")
	serverPair := authority.Issue(t, "plugin", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := testpki.WritePair(t, dir, "mqttd-broker", authority.Issue(t, "mqttd-broker", x509.ExtKeyUsageClientAuth))
	caFile := authority.WriteCA(t, dir, "ca")

	f := newUnstartedFake(t, nil)
	f.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    authority.Pool,
	}
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below are expected
	f.srv.StartTLS()

	p := newPlugin(t, f.url(), func(o *Options) {
		o.TLS = TLSOptions{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}
	})
	if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result.String() != "allow" {
		t.Fatalf("mutual TLS: %+v, %v", d, err)
	}

	// Without the client certificate the plugin refuses the handshake.
	noCert := newPlugin(t, f.url(), func(o *Options) { o.TLS = TLSOptions{CAFile: caFile} })
	if _, err := auth(noCert, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindRefused {
		t.Fatalf("no client cert: %v, want refused", err)
	}
	// Without the CA the plugin's certificate is not trusted.
	noCA := newPlugin(t, f.url(), func(o *Options) { o.TLS = TLSOptions{CertFile: clientCert, KeyFile: clientKey} })
	if _, err := auth(noCA, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindRefused {
		t.Fatalf("unknown CA: %v, want refused", err)
	}
	if n := f.count("/authenticate"); n != 1 {
		t.Fatalf("plugin answered %d requests, want only the mutually authenticated one", n)
	}
}

func TestTLSOptionErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	for name, o := range map[string]TLSOptions{
		"missing CA":     {CAFile: filepath.Join(dir, "nope.crt")},
		"CA without PEM": {CAFile: junk},
		"bad key pair":   {CertFile: junk, KeyFile: junk},
		"cert alone":     {CertFile: junk},
	} {
		opts := testOptions("https://127.0.0.1:1")
		opts.TLS = o
		if p, err := New(opts); err == nil {
			p.Close(t.Context())
			t.Errorf("%s: New accepted it", name)
		}
	}
}
