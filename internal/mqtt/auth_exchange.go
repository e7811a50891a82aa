// MQTT 5 enhanced authentication (AUTH packets): the exchange during CONNECT and re-authentication of a connected
// client, each bounded in steps and time.

package mqtt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// authExchange is one enhanced-authentication exchange under way on a
// connection: the exchanger's state between steps, and the bounds.
type authExchange struct {
	state    any
	steps    int
	deadline time.Time
}

var (
	errExchangeSteps = errors.New("authentication exchange took too many steps")
	errExchangeTime  = errors.New("authentication exchange not completed in time")
)

// startExchange begins an exchange bounded by limits.auth-exchange-timeout.
func (c *client) startExchange() *authExchange {
	return &authExchange{deadline: time.Now().Add(c.b.limits.AuthExchangeTimeout)}
}

// authStep asks the exchanger for the next step of x with the client's
// data. It returns errExchangeSteps or errExchangeTime (counted) when x is
// over a bound, in which case the answer is not used; gone is why the
// client's context ended during a CONNECT step (see decideWatched).
func (c *client) authStep(ex AuthExchanger, x *authExchange, data []byte, reauth bool) (st AuthExchange, gone, err error) {
	if x.steps >= c.b.limits.AuthExchangeSteps {
		c.b.stats.authExchangeCut.Add(1)
		return st, nil, errExchangeSteps
	}
	x.steps++
	req := &AuthStepRequest{Method: c.authMethod, Data: data, Reauth: reauth, Step: x.steps, State: x.state}
	ask := func(ctx context.Context) {
		ctx, cancel := context.WithDeadline(ctx, x.deadline)
		defer cancel()
		st = ex.AuthStep(ctx, &c.info, req)
	}
	if reauth {
		ask(c.ctx) // the read loop is this goroutine: nothing else reads the socket
	} else if gone = c.decideWatched(ask); gone != nil {
		return st, gone, nil
	}
	x.state = st.State
	if !time.Now().Before(x.deadline) {
		// Whatever the plugin said, it said it too late (a call cut by
		// the deadline may have answered with its on-error policy).
		c.b.stats.authExchangeCut.Add(1)
		return st, nil, errExchangeTime
	}
	return st, nil, nil
}

// connectExchange runs the exchange a CONNECT with an Authentication
// Method starts, until the exchanger decides; it returns the final data
// for CONNACK. The whole exchange must end by the earlier of the connect
// and the exchange deadlines.
func (c *client) connectExchange(p *packets.Connect) ([]byte, error) {
	ex, ok := c.b.hooks.Auth.(AuthExchanger)
	if !ok {
		// [MQTT5-4.12.0-1] a method the server does not support.
		c.refuseConnect(packets.BadAuthMethod, "authentication method not supported")
		return nil, errAuthMissing
	}
	x := c.startExchange()
	if x.deadline.Before(c.connectDeadline) {
		c.connectDeadline = x.deadline // every read of the exchange stops there
	}
	data := p.Props.AuthData
	for {
		st, gone, err := c.authStep(ex, x, data, false)
		switch {
		case gone != nil:
			return nil, c.abandonedAuth(gone, st.Result.Plugin)
		case err != nil:
			c.b.stats.authRejected.Add(1)
			c.refuseConnectBy(packets.NotAuthorized, err.Error(), st.Result.Plugin)
			return nil, err
		case !st.Continue:
			return st.Data, c.checkAuth(st.Result)
		}
		if data, err = c.authRound(st.Data); err != nil {
			return nil, c.brokenExchange(x, err)
		}
	}
}

// brokenExchange refuses a CONNECT whose client did not answer a step as
// it must: too late (0x87, counted), with another packet or method (0x82),
// or not at all (the connection is gone; the CONNACK is tried anyway).
func (c *client) brokenExchange(x *authExchange, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(x.deadline) {
		c.b.stats.authExchangeCut.Add(1)
		c.b.stats.authRejected.Add(1)
		c.refuseConnect(packets.NotAuthorized, errExchangeTime.Error())
		return errExchangeTime
	}
	c.refuseConnect(packets.ProtocolError, err.Error())
	return err
}

// onAuth runs an MQTT 5 re-authentication ([MQTT5-4.12.1-1]): the client
// starts it with AUTH 0x19 and the same method as at CONNECT, and answers
// each AUTH 0x18 with one. Other packets may flow meanwhile (5.0 §4.12.1);
// the connection keeps what it was granted until the exchange ends. A deny,
// or an exchange over its bounds, ends the connection with DISCONNECT.
func (c *client) onAuth(p *packets.Auth) error {
	ex, ok := c.b.hooks.Auth.(AuthExchanger)
	switch {
	case !ok || c.authMethod == "" || p.Props.AuthMethod != c.authMethod:
		return &protoError{packets.ProtocolError, "AUTH without the connection's authentication method"}
	case p.ReasonCode == packets.ReAuthenticate && c.reauth == nil:
		c.reauth = c.startExchange()
		c.armed = false // beforeRead arms the exchange's earlier deadline
	case p.ReasonCode == packets.ContinueAuthentication && c.reauth != nil:
	default:
		return &protoError{packets.ProtocolError, fmt.Sprintf("unexpected AUTH %v", p.ReasonCode)}
	}
	st, _, err := c.authStep(ex, c.reauth, p.Props.AuthData, true)
	if err != nil {
		c.reauth = nil
		c.b.stats.authRejected.Add(1)
		return &protoError{packets.NotAuthorized, "re-authentication failed: " + err.Error()}
	}
	code := packets.ContinueAuthentication
	if !st.Continue {
		c.reauth = nil
		if !st.Result.Allow {
			c.b.stats.authRejected.Add(1)
			return &protoError{packets.DenyCode(packets.DISCONNECT, st.Result.ReasonCode), "re-authentication failed: " + st.Result.Reason}
		}
		c.info.SetLogin(st.Result.Login) // the new grants and attributes apply from the next check
		if s := c.sess; s != nil {
			// Receive marks made for the old grants no longer apply:
			// mark again what the new ones cover.
			s.mu.Lock()
			if s.client == c {
				c.b.markGrantsLocked(s, st.Result.Login)
			}
			s.mu.Unlock()
		}
		code = packets.Success
	}
	out := &packets.Auth{ReasonCode: code}
	out.Props.AuthMethod = c.authMethod
	out.Props.AuthData = st.Data
	c.send(func() { c.appendControl(out) })
	return nil
}

// reauthDeadline is when a re-authentication under way must have ended;
// the zero time when none is.
func (c *client) reauthDeadline() time.Time {
	if c.reauth == nil {
		return time.Time{}
	}
	return c.reauth.deadline
}

// reauthExpired reports whether a read that hit its deadline did so
// because a re-authentication ran out of time, and counts it.
func (c *client) reauthExpired(err error) bool {
	d := c.reauthDeadline()
	if d.IsZero() || !errors.Is(err, os.ErrDeadlineExceeded) || time.Now().Before(d) {
		return false
	}
	c.b.stats.authExchangeCut.Add(1)
	c.b.stats.authRejected.Add(1)
	return true
}

// errReauthTime ends a connection whose re-authentication did not finish
// within limits.auth-exchange-timeout.
var errReauthTime = &protoError{packets.NotAuthorized, "re-authentication failed: " + errExchangeTime.Error()}
