//go:build linux

package mqtt

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// parkPoller watches the sockets of a listener's parked connections with
// one epoll instance, so that a parked connection holds no goroutine (and
// no stack) at all: when its socket becomes readable, the poller starts a
// goroutine that serves it. Everything else that must wake a parked reader
// goes through its parkConn: a read deadline set by whoever ends the
// connection (shutdown, takeover, kick), a Close (a failed write); and the
// keep-alive, which a timer enforces while the connection is parked.
type parkPoller struct {
	epfd   int // -1 once stopped
	wakeR  int // the read end of a pipe written when the listener closes
	wakeW  int
	done   chan struct{}
	mu     sync.Mutex
	parked map[int32]*client // by the id in their epoll event
	nextID int32
}

// newParkPoller starts a poller; nil when the system refuses one (the
// readers then park on a goroutine of their own).
func newParkPoller() *parkPoller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 0}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil
	}
	p := &parkPoller{epfd: epfd, wakeR: pipe[0], wakeW: pipe[1], done: make(chan struct{}),
		parked: make(map[int32]*client), nextID: 1}
	go p.run()
	return p
}

// run waits for parked sockets to become readable. When it ends (the
// listener closed, or epoll failed), it wakes every connection still parked
// and no more park here: they then wait in a read as any other.
func (p *parkPoller) run() {
	defer close(p.done)
	defer p.close()
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				return
			}
			if c := p.takeID(ev.Fd); c != nil {
				go c.resume()
			}
		}
	}
}

// stop ends the poller.
func (p *parkPoller) stop() {
	syscall.Write(p.wakeW, []byte{1})
	<-p.done
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

func (p *parkPoller) close() {
	p.mu.Lock()
	syscall.Close(p.epfd)
	p.epfd = -1
	var woken []*client
	for _, c := range p.parked {
		if p.takeLocked(c.conn.(*parkConn)) {
			woken = append(woken, c)
		}
	}
	p.mu.Unlock()
	for _, c := range woken {
		go c.resume()
	}
}

// park registers c's socket, or says it cannot. With ka >= 0 a timer wakes
// the connection after ka, when its keep-alive expires.
func (p *parkPoller) park(c *client, pc *parkConn, ka time.Duration) bool {
	rc, err := pc.TCPConn.SyscallConn()
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epfd < 0 {
		return false
	}
	id := p.nextID
	for p.parked[id] != nil || id <= 0 {
		id++
		if id <= 0 {
			id = 1
		}
	}
	p.nextID = id + 1
	var addErr error
	if err := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: id}
		addErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		pc.fd = int(fd)
	}); err != nil || addErr != nil {
		return false
	}
	p.parked[id] = c
	pc.id = id
	pc.parked.Store(true)
	switch {
	case ka < 0:
	case pc.keepAlive == nil:
		pc.keepAlive = time.AfterFunc(ka, func() {
			if p.take(pc) {
				c.resume()
			}
		})
	default:
		pc.keepAlive.Reset(ka)
	}
	return true
}

// take unregisters a parked connection; false when it was not parked (or
// someone else took it first). Exactly one taker resumes it.
func (p *parkPoller) take(pc *parkConn) bool {
	if !pc.parked.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeLocked(pc)
}

func (p *parkPoller) takeID(id int32) *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.parked[id]
	if c == nil || !p.takeLocked(c.conn.(*parkConn)) {
		return nil
	}
	return c
}

func (p *parkPoller) takeLocked(pc *parkConn) bool {
	if !pc.parked.Load() {
		return false
	}
	pc.parked.Store(false)
	delete(p.parked, pc.id)
	if p.epfd >= 0 {
		// The socket is still open: whoever closes it takes it first.
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, pc.fd, nil)
	}
	if pc.keepAlive != nil {
		pc.keepAlive.Stop()
	}
	return true
}

// parkConn is the socket of a connection that may park on its listener's
// poller: setting a read deadline or closing it wakes the parked reader,
// as they wake a reader blocked in Read.
type parkConn struct {
	*net.TCPConn
	p         *parkPoller
	c         *client
	parked    atomic.Bool
	id        int32
	fd        int
	keepAlive *time.Timer // while parked: wakes the reader when the keep-alive expires
}

func (pc *parkConn) SetReadDeadline(t time.Time) error {
	err := pc.TCPConn.SetReadDeadline(t)
	if pc.p.take(pc) {
		go pc.c.resume()
	}
	return err
}

func (pc *parkConn) SetDeadline(t time.Time) error {
	err := pc.TCPConn.SetDeadline(t)
	if pc.p.take(pc) {
		go pc.c.resume()
	}
	return err
}

func (pc *parkConn) Close() error {
	if pc.p.take(pc) {
		go pc.c.resume()
	}
	return pc.TCPConn.Close()
}

// wrapForPark gives a plain TCP socket of a listener with a poller its
// parkConn.
func wrapForPark(conn net.Conn, l *listener, c *client) net.Conn {
	tc, ok := conn.(*net.TCPConn)
	if !ok || l.poller == nil {
		return conn
	}
	return &parkConn{TCPConn: tc, p: l.poller, c: c}
}

// parkOnPoller hands c's socket to the poller; false when it is not
// parkable there (the caller parks on a goroutine instead). Once registered
// the connection belongs to whoever takes it: nothing of the reader's state
// is touched after. Ordering: the registration comes before the flags are
// read again, and those who end a connection set the flag before the
// deadline, so one of the two sides always sees the other.
func (c *client) parkOnPoller() (bool, error) {
	pc, ok := c.conn.(*parkConn)
	if !ok {
		return false, nil
	}
	ka := time.Duration(-1)
	if c.keepAlive > 0 {
		ka = max(time.Until(c.r.last.Add(c.keepAlive+c.keepAlive/2)), 0)
	}
	if !pc.p.park(c, pc, ka) {
		return false, nil
	}
	if err := c.closingErr(); err != nil && pc.p.take(pc) {
		return true, err
	}
	return true, nil
}

func newListenerPoller(transport string) *parkPoller {
	if transport != "tcp" {
		return nil
	}
	return newParkPoller()
}

// count is how many connections are parked on the poller.
func (p *parkPoller) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}
