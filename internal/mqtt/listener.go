package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// listener is one open endpoint: a TCP accept loop, or an HTTP server that
// upgrades WebSocket requests. Either way each connection ends up as a
// net.Conn handed to Broker.runConn.
type listener struct {
	name      string
	transport string // tcp, tls, ws, wss
	ln        net.Listener
	http      *http.Server
	once      sync.Once
	done      chan struct{}
	poller    *parkPoller // where idle plain-TCP connections park; nil for none
}

func (l *listener) Addr() net.Addr { return l.ln.Addr() }

func (l *listener) close() {
	l.once.Do(func() {
		if l.http != nil {
			l.http.Close()
		} else {
			l.ln.Close()
		}
		<-l.done
		if l.poller != nil {
			l.poller.stop()
		}
	})
}

func (b *Broker) listen(lc ListenerConfig) (*listener, error) {
	ln, err := net.Listen("tcp", lc.Bind)
	if err != nil {
		return nil, err
	}
	l := &listener{name: lc.Name, transport: lc.Type, ln: ln, done: make(chan struct{})}
	if lc.TLS != nil {
		l.transport += "s"
		if lc.Type == "tcp" {
			l.transport = "tls"
		}
		ln = tls.NewListener(ln, lc.TLS)
		l.ln = ln
	}
	if lc.Type == "ws" {
		path := lc.Path
		if path == "" {
			path = "/mqtt"
		}
		mux := http.NewServeMux()
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { b.serveWebSocket(l, w, r) })
		l.http = &http.Server{Handler: mux, ReadHeaderTimeout: b.limits.ConnectTimeout, ErrorLog: slogAdapter(b)}
		go func() {
			defer close(l.done)
			l.http.Serve(ln)
		}()
		return l, nil
	}
	if l.transport == "tcp" {
		l.poller = newListenerPoller(l.transport)
	}
	go func() {
		defer close(l.done)
		b.acceptLoop(l)
	}()
	return l, nil
}

func (b *Broker) acceptLoop(l *listener) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than spin.
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			b.log.Warn("accept failed", "listener", l.name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		b.startConn(conn, l)
	}
}

// startConn serves an accepted socket on its own goroutine.
func (b *Broker) startConn(conn net.Conn, l *listener) {
	if !b.admit(conn) {
		return
	}
	go b.runConn(conn, l, true)
}

// admit registers a new socket with the shutdown wait group, or closes it
// when the broker is closing. closing is read under b.mu so that no Add can
// slip in after Close has started waiting.
func (b *Broker) admit(conn net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing.Load() {
		conn.Close()
		return false
	}
	b.wg.Add(1)
	return true
}

// serveWebSocket upgrades an HTTP request to MQTT over WebSocket: binary
// frames, subprotocol "mqtt" ([MQTT-6.0.0-4]; "mqttv3.1" too for old clients).
func (b *Broker) serveWebSocket(l *listener, w http.ResponseWriter, r *http.Request) {
	if !offersMQTT(r.Header.Values("Sec-WebSocket-Protocol")) {
		http.Error(w, `mqttd: WebSocket subprotocol "mqtt" required`, http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"mqtt", "mqttv3.1"},
		InsecureSkipVerify: true, // MQTT clients do not send a browser Origin worth checking
	})
	if err != nil {
		return
	}
	ws.SetReadLimit(int64(b.limits.MaxPacketSize) + 1024)
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	conn := &wsConn{Conn: nc, remote: r.RemoteAddr}
	// The HTTP server runs this handler on its own goroutine: serve here.
	if b.admit(conn) {
		b.runConn(conn, l, false)
	}
}

func offersMQTT(headers []string) bool {
	for _, h := range headers {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p == "mqtt" || p == "mqttv3.1" {
				return true
			}
		}
	}
	return false
}

// wsConn reports the HTTP peer's address instead of the WebSocket's.
type wsConn struct {
	net.Conn
	remote string
}

type strAddr string

func (a strAddr) Network() string { return "tcp" }
func (a strAddr) String() string  { return string(a) }

func (c *wsConn) RemoteAddr() net.Addr { return strAddr(c.remote) }
