// Parking an idle connection's read side: a connection that sends nothing
// holds no read buffer and, on its listener's poller (Linux), no goroutine;
// elsewhere a goroutine with the smallest stack.

package mqtt

import (
	"errors"
	"net"
	"os"
	"time"
)

// readerLinger is how long a reader waits for a packet before it parks: it
// gives its read buffer back and leaves the wait to a fresh goroutine whose
// stack has never grown past the minimum (handling packets grows a stack,
// and the runtime does not shrink it while the goroutine waits in a read).
// Waking a parked connection costs a goroutine start and a peek at the
// socket, so a connection busier than this never parks.
const readerLinger = 2 * time.Second

// linger is readerLinger unless a test set another.
func (b *Broker) linger() time.Duration {
	if b.opts.readerLinger > 0 {
		return b.opts.readerLinger
	}
	return readerLinger
}

// errParked ends a read loop that has handed the connection to a waiter.
var errParked = errors.New("reader parked")

// canPark says whether a connection's reader may park: only plain TCP
// sockets, whose readiness can be awaited without reading.
func canPark(conn net.Conn) bool {
	_, ok := conn.(*net.TCPConn)
	return ok && peekSupported
}

// handOff continues the read side on a fresh goroutine once CONNECT has been
// accepted: the handshake grew this goroutine's stack. A connection with
// nothing more to read parks straight away.
func (c *client) handOff() {
	if !c.parkable || !c.r.empty() {
		go c.serve()
		return
	}
	if err := c.park(); err != nil {
		c.end(err)
	}
}

// park gives the read buffer back, arms the keep-alive deadline and starts
// the goroutine that waits for the socket to become readable. It returns
// the reason to end the connection instead, when there is one; the
// deadline is armed before the flags are read so that a concurrent
// shutdown, takeover or kick (flag first, then a past deadline) is never
// missed.
func (c *client) park() error {
	c.r.release()
	c.routes.forget()
	if ok, err := c.parkOnPoller(); ok {
		return err
	}
	c.conn.SetReadDeadline(c.nextDeadline(time.Now(), false))
	c.armed = true
	if err := c.closingErr(); err != nil {
		return err
	}
	go c.waitReadable()
	return nil
}

// waitReadable is the parked connection's goroutine: it waits, holding
// nothing, until a packet (or the end) arrives, then serves the connection.
// The deadline armed by park wakes it too: serve's first read then fails at
// once and says why. Awake, the reader arms the deadline afresh, so that it
// parks again once the traffic stops.
func (c *client) waitReadable() {
	awaitReadable(c.conn)
	c.resume()
}

// resume serves a parked connection again.
func (c *client) resume() {
	c.armed = false
	c.serve()
}

// nextDeadline is when the reader next has to wake with no bytes arrived:
// the keep-alive deadline, or with idle the time to park when that is
// earlier; zero for never. The time to park counts from the last bytes
// received, or from now when that has passed (the read about to start may
// bring some: the check when the deadline passes tells).
func (c *client) nextDeadline(now time.Time, idle bool) time.Time {
	var d time.Time
	if c.keepAlive > 0 {
		d = c.r.last.Add(c.keepAlive + c.keepAlive/2)
	}
	if r := c.reauthDeadline(); !r.IsZero() && (d.IsZero() || r.Before(d)) {
		d = r // a re-authentication under way must end sooner
	}
	if idle {
		p := c.r.last.Add(c.b.linger())
		if !p.After(now) {
			p = now.Add(c.b.linger())
		}
		if d.IsZero() || p.Before(d) {
			d = p
		}
	}
	return d
}

// timedOut decides what a read deadline that passed means once the client
// is connected. The deadline is armed lazily (not moved on every read), so
// it may pass while the client is active: then the reader re-arms it and
// reads on (nil). Otherwise the keep-alive expired (1.5 times the keep alive
// without a packet closes the connection: [MQTT-3.1.2-24] in 3.1.1,
// [MQTT5-3.1.2-22] in 5.0), or the connection has been idle long enough
// to park (errParked).
func (c *client) timedOut(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) || c.closingErr() != nil {
		return err
	}
	now := time.Now()
	if c.keepAlive > 0 && !now.Before(c.r.last.Add(c.keepAlive+c.keepAlive/2)) {
		return err
	}
	if r := c.reauthDeadline(); !r.IsZero() && !now.Before(r) {
		return err // readError counts it as a re-authentication cut
	}
	c.armed = false
	if c.parkable && c.reauth == nil && c.r.empty() && !now.Before(c.r.last.Add(c.b.linger())) {
		return errParked
	}
	return nil
}
