package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Guard decides who may use the admin listener. Health, readiness,
// metrics and the dashboard's page shell (/ui/) are open to all: probes
// and scrapers hold no credential, and the page asks for the token itself.
// Everything else (the REST API, /plugins, /debug) needs:
//
//   - the bearer token, when admin.token is set (compared in constant
//     time); without one, a request that reached a loopback address of the
//     listener with a Host of localhost or an IP literal (a name would let
//     a DNS-rebinding page in). So a broker whose admin listener is on a
//     public interface offers nothing beyond health and metrics until a
//     token is set;
//   - for any request, no Sec-Fetch-Site of cross-site: a page elsewhere
//     must not make the operator's browser fetch even a read (an image
//     tag pointing at /debug/pprof/profile burns CPU for 30 s);
//   - for a request that changes something (any method but GET and HEAD):
//     no Origin other than the listener's own and no Sec-Fetch-Site other
//     than same-origin or none, so that a page elsewhere cannot make the
//     operator's browser act, token or not; and a body, when there is one,
//     of type application/json, which a plain HTML form cannot send.
type Guard struct {
	token   [sha256.Size]byte
	hasTok  bool
	refused *prometheus.CounterVec
}

// Guard refusal reasons, the values of the reason label.
const (
	refusedToken     = "unauthorized"
	refusedOrigin    = "cross_origin"
	refusedNotLocal  = "no_token_not_loopback"
	refusedMediaType = "not_json"
)

// NewGuard returns a guard for token ("" for none). It registers
// mqttd_admin_requests_refused_total in reg when reg is not nil.
func NewGuard(token string, reg prometheus.Registerer) *Guard {
	g := &Guard{hasTok: token != ""}
	if g.hasTok {
		g.token = sha256.Sum256([]byte(token))
	}
	g.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqttd_admin_requests_refused_total",
		Help: "Admin requests refused, by reason: unauthorized, cross_origin, no_token_not_loopback, not_json.",
	}, []string{"reason"})
	for _, r := range []string{refusedToken, refusedOrigin, refusedNotLocal, refusedMediaType} {
		g.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(g.refused)
	}
	return g
}

// Wrap returns h behind the guard.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		if status, reason, msg := g.check(r); status != 0 {
			g.refused.WithLabelValues(reason).Inc()
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mqttd admin"`)
			}
			writeError(w, status, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// openPath reports whether path is served without any check.
func openPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics", "/ui":
		return true
	}
	return strings.HasPrefix(path, "/ui/")
}

// check returns the status, metric reason and message of a refusal, or a
// zero status to let the request through.
func (g *Guard) check(r *http.Request) (int, string, string) {
	mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
	if mutating {
		if msg := crossOrigin(r); msg != "" {
			return http.StatusForbidden, refusedOrigin, msg
		}
	} else if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return http.StatusForbidden, refusedOrigin,
			"refused a cross-site request: the admin API answers only its own pages and clients that are not browsers"
	}
	if g.hasTok {
		if !g.tokenOK(r) {
			return http.StatusUnauthorized, refusedToken,
				"missing or wrong admin token: send the value of admin.token as 'Authorization: Bearer <token>'"
		}
	} else if !localRequest(r) {
		return http.StatusForbidden, refusedNotLocal,
			"no admin.token is set, so the admin API answers only on a loopback address (with Host localhost or an IP): set admin.token (e.g. admin.token: ${MQTTD_ADMIN_TOKEN}) and send it as a bearer token"
	}
	if mutating && hasBody(r) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, refusedMediaType,
				"send the request body as JSON with 'Content-Type: application/json'"
		}
	}
	return 0, "", ""
}

func (g *Guard) tokenOK(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	// Hashing first makes the comparison's time independent of the
	// token's length as well as its bytes.
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], g.token[:]) == 1
}

// crossOrigin explains why a changing request comes from another origin,
// or returns "". Browsers send Origin on every cross-origin POST and
// DELETE; Sec-Fetch-Site says where a request came from in every current
// browser. Clients that send neither (curl, scripts) are not browsers
// acting for someone else.
func crossOrigin(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "refused a " + site + " request: the admin API acts only for pages of its own origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if err != nil || u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
		return "refused a request from origin " + origin + ": the admin API acts only for pages of its own origin (" + scheme + "://" + r.Host + ")"
	}
	return ""
}

// localRequest reports whether r reached a loopback address of the
// listener and names the host as localhost or an IP literal.
func localRequest(r *http.Request) bool {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !Loopback(la) {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

// hasBody reports whether r carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// Loopback reports whether a is a loopback address (the admin listener
// bound to 127.0.0.1 or ::1).
func Loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
