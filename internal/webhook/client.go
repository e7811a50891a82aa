package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/signing"
)

// userAgent names the broker and its version ("mqttd/0.1.0").
var userAgent = "mqttd/" + strings.TrimPrefix(mqtt.Version, "mqttd ")

// client sends one plugin's requests: pooled keep-alive connections, the
// headers every request carries (docs/design.md §4), the signature, no redirects,
// and a cap on how much of an answer is read.
type client struct {
	alias     string
	base      string
	hc        *http.Client
	transport *http.Transport
	secret    []byte
	headers   http.Header // the configured extra headers
	host      string      // a configured Host header, which net/http takes from Request.Host
	maxBody   int64
	idPrefix  string // random per client, so request ids stay unique across restarts
	seq       atomic.Uint64
	now       func() time.Time
}

// response is an answer read up to the body cap.
type response struct {
	status  int
	header  http.Header
	body    []byte
	tooLong bool // the body went past maxBody; body holds the first maxBody bytes
}

func newClient(o Options) (*client, error) {
	tc, err := tlsConfig(o.TLS)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", o.Alias, err)
	}
	t := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       dialWholeBodies((&net.Dialer{KeepAlive: 30 * time.Second}).DialContext),
		TLSClientConfig:   tc,
		ForceAttemptHTTP2: true,
		// Sized for concurrency: every in-flight decision may hold a
		// connection, and keeping as many idle avoids a reconnect storm
		// after a burst. MaxConnsPerHost bounds the load one broker can
		// put on a plugin; callers beyond it wait under their timeout.
		MaxIdleConns:        o.MaxConns,
		MaxIdleConnsPerHost: o.MaxConns,
		MaxConnsPerHost:     o.MaxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	var id [6]byte
	rand.Read(id[:])
	c := &client{
		alias:     o.Alias,
		base:      o.URL,
		transport: t,
		hc: &http.Client{
			Transport: t,
			// A redirect is an error, not a hint: following it would
			// send the credentials in the body to wherever it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		headers:  http.Header{},
		maxBody:  o.MaxBody,
		idPrefix: hex.EncodeToString(id[:]) + "-",
		now:      time.Now,
	}
	if o.Secret != "" {
		c.secret = []byte(o.Secret)
	}
	for k, v := range o.Headers {
		if strings.EqualFold(k, "Host") {
			c.host = v
			continue
		}
		c.headers.Set(k, v)
	}
	return c, nil
}

func tlsConfig(o TLSOptions) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca: no PEM certificate in %s (want a file of -----BEGIN CERTIFICATE----- blocks)", o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert/key: %w (want PEM files of a certificate and its private key)", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// do sends one request and reads at most maxBody bytes of the answer. The
// error is a transport error (the caller classifies it); any status is a
// response.
func (c *client) do(ctx context.Context, method, path string, body []byte) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	newBody(req, body)
	h := req.Header
	for k, v := range c.headers {
		h[k] = v
	}
	if c.host != "" {
		req.Host = c.host
	}
	// Set after the configured headers, so these cannot be overridden.
	h.Set("User-Agent", userAgent)
	h.Set("X-Mqttd-Plugin", c.alias)
	id := c.idPrefix + strconv.FormatUint(c.seq.Add(1), 10)
	h.Set("X-Mqttd-Request-Id", id)
	h.Set("Content-Type", "application/json")
	if c.secret != nil {
		// The path as it goes on the wire, the alias's base path included.
		r := signing.Request{Method: method, Path: req.URL.EscapedPath(), ID: id, Body: body}
		h.Set(signing.Header, signing.Sign(c.secret, r, c.now()))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &response{status: resp.StatusCode, header: resp.Header}
	r.body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(r.body)) > c.maxBody {
		r.body, r.tooLong = r.body[:c.maxBody], true
		// Closing with the rest unread drops the connection rather than
		// reading a runaway answer to its end.
	}
	return r, nil
}

// close drops the idle pooled connections (and their goroutines).
func (c *client) close() { c.transport.CloseIdleConnections() }

// dialWholeBodies wraps dial so that a request body goes to the connection
// in one write. net/http copies a body of known length through an
// io.LimitReader, which hides the bytes.Reader's WriteTo, so that it goes
// in 32 KiB pieces: a batch of events of 300 KiB took eleven write calls
// and a copy into a fresh 32 KiB buffer. Over TLS the wrapper is below the
// TLS connection and does nothing.
func dialWholeBodies(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wholeBodyConn{c}, nil
	}
}

// wholeBodyConn is a net.Conn that writes a request body (a bytes.Reader
// under net/http's io.LimitReader) with one Write.
type wholeBodyConn struct{ net.Conn }

func (c wholeBodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(*wholeBody); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(c.Conn)
			lr.N -= n
			return n, err
		}
	}
	return io.Copy(c.Conn, r) // the connection's own ReadFrom, if any
}

// wholeBody is a request body that wholeBodyConn recognises under
// net/http's wrappers (a bytes.Reader would come wrapped in io.NopCloser,
// which keeps its WriteTo but hides its length).
type wholeBody struct{ bytes.Reader }

func (*wholeBody) Close() error { return nil }

// newBody is body as a request body, with what net/http needs to know its
// length and to send it again on a retried request.
func newBody(req *http.Request, body []byte) {
	if len(body) == 0 {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }, 0
		return
	}
	open := func() (io.ReadCloser, error) {
		b := new(wholeBody)
		b.Reset(body)
		return b, nil
	}
	req.Body, _ = open()
	req.GetBody, req.ContentLength = open, int64(len(body))
}
