package webhook

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/cache"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// Endpoint names, as in metrics, keys and paths.
const (
	epAuthenticate   = "authenticate"
	epTopicFiltering = "topic_filtering"
)

// Key and tag domains (cache.Keyer): one byte each, all different, so no
// two kinds of key can collide.
const (
	domainAuthenticate byte = iota + 1
	domainTopicFiltering
	domainClientID
	domainUsername
)

// leaf returns the client's verified certificate, if any, and the SHA-256
// of its DER bytes.
func leaf(c *mqtt.ClientInfo) (*x509.Certificate, [sha256.Size]byte) {
	if len(c.PeerCerts) == 0 {
		return nil, [sha256.Size]byte{}
	}
	return c.PeerCerts[0], sha256.Sum256(c.PeerCerts[0].Raw)
}

// peerIP is the address without its port: a client reconnecting from a new
// source port must hit the cache (the port in VerneMQ's key made every
// reconnect a miss).
func peerIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// authKey covers every field of the POST /authenticate body (authBody), so
// a cached decision is only ever reused for a request the plugin would
// have seen as the same: client id, user name, password (and whether there
// was one), listener, transport, protocol version, clean start, keep
// alive, the user properties in order, and the client certificate (by
// fingerprint, which fixes every tls field). The one exception is the
// source port of remote_addr: the key has the IP alone, or every reconnect
// would miss; a plugin that decides on the port answers cache_ttl 0.
func authKey(k *cache.Keyer, req *hooks.AuthRequest) cache.Key {
	c := req.Client
	b := k.Begin(domainAuthenticate).String(c.ClientID).String(c.Username).
		Byte(flag(req.Password != nil)).Bytes(req.Password).String(peerIP(c.RemoteAddr)).String(c.Listener).
		String(c.Transport).Byte(c.ProtocolVersion).Byte(flag(c.CleanStart)).
		Byte(byte(c.KeepAlive >> 8)).Byte(byte(c.KeepAlive)).Uvarint(uint64(len(c.UserProperties)))
	for _, p := range c.UserProperties {
		b = b.String(p.Key).String(p.Value)
	}
	if cert, fp := leaf(c); cert != nil {
		return b.Bytes(fp[:]).Sum()
	}
	return b.Bytes(nil).Sum() // a short key hashes in fewer blocks
}

func flag(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// topicKey covers every field of a topic_filtering request.
func topicKey(k *cache.Keyer, c *mqtt.ClientInfo, r mqtt.TopicRequest) cache.Key {
	return k.Begin(domainTopicFiltering).String(c.ClientID).String(c.Username).
		String(r.Topic).Byte(byte(r.Action)).Byte(r.QoS).Byte(flag(r.Retain)).Sum()
}

// authJSON is the POST /authenticate body: the session fields plus the
// credentials. It embeds wire.Session rather than filling
// wire.AuthenticateRequest field by field, so the two mappings cannot
// drift; contract tests prove the result matches the spec.
type authJSON struct {
	wire.Session
	Password       *string                 `json:"password,omitempty"`
	PasswordBase64 []byte                  `json:"password_base64,omitempty"`
	TLS            *wire.ClientCertificate `json:"tls,omitempty"`
	UserProperties []wire.UserProperty     `json:"user_properties,omitempty"`
	authExchangeJSON
}

// authExchangeJSON is what a step of enhanced authentication adds to the
// POST /authenticate body; a plain CONNECT has none of it.
type authExchangeJSON struct {
	AuthMethod     string `json:"auth_method,omitempty"`
	AuthData       []byte `json:"auth_data,omitempty"`
	ExchangeID     string `json:"exchange_id,omitempty"`
	ExchangeStep   int    `json:"exchange_step,omitempty"`
	Reauthenticate bool   `json:"reauthenticate,omitempty"`
}

// authBody is the POST /authenticate body.
func authBody(req *hooks.AuthRequest) ([]byte, error) {
	c := req.Client
	body := authJSON{Session: *session(c)}
	switch {
	case req.Password == nil:
	case utf8.Valid(req.Password):
		s := string(req.Password)
		body.Password = &s
	default:
		body.PasswordBase64 = req.Password
	}
	if cert, fp := leaf(c); cert != nil {
		body.TLS = &wire.ClientCertificate{
			Subject:           cert.Subject.String(),
			Issuer:            cert.Issuer.String(),
			Serial:            cert.SerialNumber.Text(16),
			DNSNames:          append([]string{}, cert.DNSNames...), // [] rather than null: the field is required
			FingerprintSha256: hex.EncodeToString(fp[:]),
		}
	}
	for _, p := range c.UserProperties {
		body.UserProperties = append(body.UserProperties, wire.UserProperty{Key: p.Key, Value: p.Value})
	}
	if req.ExchangeID != "" {
		body.authExchangeJSON = authExchangeJSON{AuthMethod: req.Method, AuthData: req.Data,
			ExchangeID: req.ExchangeID, ExchangeStep: req.Step, Reauthenticate: req.Reauth}
	}
	return json.Marshal(&body)
}

// topicBody is the POST /topic_filtering body.
func topicBody(c *mqtt.ClientInfo, r mqtt.TopicRequest) ([]byte, error) {
	return json.Marshal(&wire.TopicFilteringRequest{
		ClientID: c.ClientID,
		Username: c.Username,
		Topic:    r.Topic,
		Action:   wire.TopicFilteringRequestAction(r.Action.String()),
		QOS:      int(r.QoS),
		Retain:   r.Retain,
	})
}
