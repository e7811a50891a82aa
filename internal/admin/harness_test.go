package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/api"
	"github.com/mqttd/mqttd/internal/mqtt"
	webcontract "github.com/mqttd/mqttd/internal/webhook/contract"
)

// contract validates the API's requests and answers against
// api/admin.yaml, stricter than the spec in one way: an object may not
// carry a field the spec does not name, so a field added to a handler but
// not to the spec fails.
type contract struct {
	doc    *openapi3.T
	routes []specRoute
	mu     sync.Mutex
	seen   map[string]bool // "METHOD /template" validated with a 2xx answer
}

type specRoute struct {
	tmpl string
	re   *regexp.Regexp
}

var (
	contractOnce sync.Once
	theContract  *contract
	contractErr  error
)

func loadContract(t *testing.T) *contract {
	t.Helper()
	contractOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(api.AdminSpec)
		if err != nil {
			contractErr = err
			return
		}
		doc.SetStringFormatValidator("byte", openapi3.NewCallbackValidator(func(s string) error {
			_, err := base64.StdEncoding.DecodeString(s)
			return err
		}))
		webcontract.ForbidUnknownFields(doc)
		c := &contract{doc: doc, seen: map[string]bool{}}
		for tmpl := range doc.Paths.Map() {
			// A path parameter is one escaped segment; a topic may also
			// come with its slashes unescaped.
			var pat strings.Builder
			rest := tmpl
			for {
				i := strings.IndexByte(rest, '{')
				if i < 0 {
					pat.WriteString(regexp.QuoteMeta(rest))
					break
				}
				j := strings.IndexByte(rest, '}')
				pat.WriteString(regexp.QuoteMeta(rest[:i]))
				name := rest[i+1 : j]
				if name == "topic" {
					pat.WriteString("(?P<" + name + ">.+)")
				} else {
					pat.WriteString("(?P<" + name + ">[^/]+)")
				}
				rest = rest[j+1:]
			}
			c.routes = append(c.routes, specRoute{tmpl, regexp.MustCompile("^" + pat.String() + "$")})
		}
		sort.Slice(c.routes, func(i, j int) bool { return len(c.routes[i].tmpl) > len(c.routes[j].tmpl) })
		theContract = c
	})
	if contractErr != nil {
		t.Fatalf("load api/admin.yaml: %v", contractErr)
	}
	return theContract
}

// check validates one exchange. Requests are validated only when the
// answer is a success: the tests send bad requests on purpose.
func (c *contract) check(t *testing.T, req *http.Request, reqBody []byte, status int, hdr http.Header, body []byte) {
	t.Helper()
	path := req.URL.EscapedPath()
	var tmpl string
	params := map[string]string{}
	for _, r := range c.routes {
		if m := r.re.FindStringSubmatch(path); m != nil {
			tmpl = r.tmpl
			for i, name := range r.re.SubexpNames() {
				if name != "" {
					params[name], _ = url.PathUnescape(m[i])
				}
			}
			break
		}
	}
	if tmpl == "" {
		return // not an API path (legacy /plugins, health): nothing to check
	}
	item := c.doc.Paths.Value(tmpl)
	op := item.GetOperation(req.Method)
	if op == nil {
		if status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: not in api/admin.yaml, answered %d", req.Method, tmpl, status)
		}
		return
	}
	route := &routers.Route{Spec: c.doc, Path: tmpl, PathItem: item, Method: req.Method, Operation: op}
	opts := &openapi3filter.Options{
		MultiError:            true,
		IncludeResponseStatus: true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: vreq, Route: route, Options: opts, PathParams: params}
	if status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: the request does not match api/admin.yaml: %v", req.Method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: hdr, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: answer %d does not match api/admin.yaml: %v\n%s", req.Method, path, status, err, body)
	}
	if status < 300 {
		c.mu.Lock()
		c.seen[req.Method+" "+tmpl] = true
		c.mu.Unlock()
	}
}

// unseen lists the spec's operations no test has seen succeed.
func (c *contract) unseen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for tmpl, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			if !c.seen[method+" "+tmpl] {
				out = append(out, method+" "+tmpl)
			}
		}
	}
	sort.Strings(out)
	return out
}

// env is a real broker on loopback with the admin surface in front of it,
// as cmd/mqttd wires it.
type env struct {
	t        *testing.T
	b        *mqtt.Broker
	mqttAddr string
	url      string // http://127.0.0.1:port
	token    string
	reg      *prometheus.Registry
	guard    *Guard
}

type envOptions struct {
	token   string
	hooks   mqtt.Hooks
	plugins func() []PluginInfo
	limits  mqtt.Limits
	legacy  http.Handler // mounted at /plugins
}

func startEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	b, err := mqtt.New(mqtt.Options{
		Name:        "test",
		Listeners:   []mqtt.ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}},
		SysInterval: -1,
		Hooks:       o.hooks,
		Limits:      o.limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	reg := prometheus.NewRegistry()
	a := &API{Broker: b, Plugins: o.plugins, MaxBody: 64 << 10}
	mounts := []Mount{a.Mount(), Profiler()}
	if o.legacy != nil {
		mounts = append(mounts, Mount{Pattern: "/plugins", Handler: o.legacy})
	}
	g := NewGuard(o.token, reg)
	h := g.Wrap(NewHandler(b, func() error { return nil }, reg, mounts...))
	srv, err := Listen("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &env{t: t, b: b, mqttAddr: b.Addr("tcp").String(), url: "http://" + srv.Addr().String(), token: o.token, reg: reg, guard: g}
}

// reply is one answer of the admin listener.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorText is the message of an {"error": ...} answer.
func (r reply) errorText(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("an error answer without a message: %s", r.body)
	}
	return e.Error
}

// call sends one request with the env's token (unless headers set
// Authorization; "Authorization": "" sends none) and JSON content type
// when there is a body, checking the exchange against the contract.
func (e *env) call(method, path string, body string, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: out}
	if strings.HasPrefix(req.URL.Path, APIPrefix) {
		loadContract(e.t).check(e.t, req, []byte(body), r.status, r.header, r.body)
	}
	return r
}

// must is call that fails the test unless the status is want.
func (e *env) must(want int, method, path, body string, headers ...string) reply {
	e.t.Helper()
	r := e.call(method, path, body, headers...)
	if r.status != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r
}

// client connects a paho (MQTT 3.1.1) client.
func (e *env) client(id, user string, mod func(*paho.ClientOptions)) paho.Client {
	e.t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + e.mqttAddr).SetClientID(id).SetUsername(user).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		e.t.Fatalf("connect %s: %v", id, tok.Error())
	}
	e.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// waitFor polls cond until it holds; the deadline only bounds how long an
// asynchronous effect may take.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
