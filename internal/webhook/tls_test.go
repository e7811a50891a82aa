package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ca is a throwaway certificate authority for one test.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ca{cert: cert, key: key, pool: pool}
}

// issue signs a certificate for cn (a loopback server when server is set,
// else a client) and writes it and its key as PEM files in dir.
func (c *ca) issue(t *testing.T, dir, cn string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

func (c *ca) writePEM(t *testing.T, dir string) string {
	f := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

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
	authority := newCA(t)
	_, _, serverPair := authority.issue(t, dir, "plugin", true)
	clientCert, clientKey, _ := authority.issue(t, dir, "mqttd-broker", false)
	caFile := authority.writePEM(t, dir)

	f := newUnstartedFake(t, nil)
	f.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    authority.pool,
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
