package mqtt

import (
	"context"
	"errors"
	"net"
	"time"
)

// errClientGone ends a hook's context when the client disconnects while the
// hook is deciding its CONNECT.
var errClientGone = errors.New("client disconnected while its CONNECT was being decided")

// maxPipelined bounds what the watcher buffers from a client that keeps
// sending while it is not yet authenticated; past it the watcher stops
// reading and lets TCP flow control hold the client back. A smaller
// max-connect-size lowers it: nothing unauthenticated may hold more.
const maxPipelined = 64 << 10

// decideWatched runs decide with a context that ends when the client goes
// away, so a slow authentication plugin stops working for a client nobody
// waits for. During CONNECT nothing else reads the socket, so a goroutine
// reads it meanwhile; whatever the client pipelined after CONNECT is handed
// back to the packet reader afterwards, in order. WebSocket connections
// are not watched: a read deadline closes a coder/websocket net.Conn, and
// the deadline is how the watcher is stopped.
//
// It returns why the context ended before decide returned (the client went
// away, the broker is closing), or nil: a decision made on an ended context
// did not complete, whatever it says, and the caller refuses the CONNECT.
func (c *client) decideWatched(decide func(ctx context.Context)) error {
	if c.info.Transport == "ws" || c.info.Transport == "wss" {
		decide(c.ctx)
		return context.Cause(c.ctx)
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	var got []byte
	done := make(chan struct{})
	limit := min(maxPipelined, c.b.limits.MaxConnectSize)
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for len(got) < limit {
			n, err := c.conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					cancel(errClientGone)
				}
				return
			}
		}
	}()
	decide(ctx)
	// Read before the watcher is stopped: a context that ended while decide
	// ran may have shaped its answer; one that ends after did not.
	abandoned := context.Cause(ctx)
	c.conn.SetReadDeadline(time.Now()) // wakes the watcher's Read
	<-done
	c.conn.SetReadDeadline(c.connectDeadline)
	c.r.unread(got)
	return abandoned
}
