package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// tlsMaterial is what a TLS listener loaded at Load time, so that a bad
// certificate is a config error (and check-config finds it).
type tlsMaterial struct {
	cert    tls.Certificate
	clients *x509.CertPool // nil without client-ca
}

func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// loadTLS reads the certificates and keys of every TLS listener. The
// private key is parsed, never printed: messages name its path only.
func (l *loader) loadTLS(c *Config) []error {
	var errs []error
	c.tlsConf = map[string]*tlsMaterial{}
	for _, name := range sortedKeys(c.Listeners) {
		t := c.Listeners[name].TLS
		if t.Cert == "" || t.Key == "" {
			continue
		}
		key := "listeners." + name + ".tls"
		certPEM, err := readPEM(c.resolve(t.Cert))
		if err != nil {
			errs = append(errs, l.errorf(key+".cert", "%v", err))
		}
		keyPEM, kerr := readPEM(c.resolve(t.Key))
		if kerr != nil {
			errs = append(errs, l.errorf(key+".key", "%v", kerr))
		}
		if err != nil || kerr != nil {
			continue
		}
		m := &tlsMaterial{}
		m.cert, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			errs = append(errs, l.errorf(key, "cert %s and key %s do not load: %v (both must be PEM, and the key must belong to the certificate)", t.Cert, t.Key, err))
			continue
		}
		if t.ClientCA != "" {
			caPEM, err := readPEM(c.resolve(t.ClientCA))
			if err != nil {
				errs = append(errs, l.errorf(key+".client-ca", "%v", err))
				continue
			}
			m.clients = x509.NewCertPool()
			if !m.clients.AppendCertsFromPEM(caPEM) {
				errs = append(errs, l.errorf(key+".client-ca", "%s holds no PEM certificate (give a file of -----BEGIN CERTIFICATE----- blocks)", t.ClientCA))
				continue
			}
		}
		c.tlsConf[name] = m
	}
	return errs
}

func readPEM(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cannot read %s: no such file (relative paths are resolved against the config file's directory)", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, errors.New(Unreadable(path))
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	return b, nil
}

// ListenerTLS returns a fresh TLS configuration for the named listener, or
// nil when it does not use TLS: TLS 1.2 at least, and, with client-ca, a
// client certificate signed by that CA is required. The certificates are
// those Load read, so only a Config returned by Load has any.
func (c *Config) ListenerTLS(name string) *tls.Config {
	m := c.tlsConf[name]
	if m == nil {
		return nil
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{m.cert},
	}
	if m.clients != nil {
		tc.ClientCAs = m.clients
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc
}
