//go:build !linux

package mqtt

import "net"

// parkPoller exists on Linux only; elsewhere a parked reader waits on a
// goroutine of its own.
type parkPoller struct{}

func newListenerPoller(string) *parkPoller { return nil }

func (p *parkPoller) stop() {}

func wrapForPark(conn net.Conn, _ *listener, _ *client) net.Conn { return conn }

func (c *client) parkOnPoller() (bool, error) { return false, nil }

func (p *parkPoller) count() int { return 0 }
