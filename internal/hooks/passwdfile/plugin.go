// Package passwdfile is the password-file built-in plugin: it
// authenticates CONNECTs against a file of username:hash lines, the hashes
// argon2id (PHC string form) or bcrypt, as written by `mqttd passwd`.
//
// It answers only for the users it knows. A client without a user name, or
// with one the file does not list, gets Ignore, so another plugin (or
// auth.allow-anonymous) decides; a listed user gets Allow with the right
// password and Deny with 0x86 (bad user name or password) otherwise.
//
// Hashing is deliberately slow, so a storm of CONNECTs could take every
// core: at most runtime.NumCPU() verifications run at once, and a CONNECT
// waiting for its turn gives up when its context ends (the client left,
// or the auth chain's timeout passed).
package passwdfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/hooks"
)

// Options configures a Plugin.
type Options struct {
	// File is the password file. It must exist and parse; an empty file
	// (no users) is allowed.
	File string
}

// Plugin is a password-file plugin. It implements hooks.Authenticator.
type Plugin struct {
	file  string
	users atomic.Pointer[map[string]hash]
	// sem holds one token per verification in progress.
	sem chan struct{}
}

var _ hooks.Authenticator = (*Plugin)(nil)

// ReasonBadCredentials is the MQTT 5 reason code of a wrong password:
// 0x86, bad user name or password (3.1.1 clients hear 0x04).
const ReasonBadCredentials = 0x86

// New loads o.File.
func New(o Options) (*Plugin, error) {
	if o.File == "" {
		return nil, errors.New("password-file: no file given (set file: PATH, a file written by mqttd passwd)")
	}
	p := &Plugin{file: o.File, sem: make(chan struct{}, runtime.NumCPU())}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the file again. Clients keep their connections; the new
// entries apply from the next CONNECT. On error the entries loaded before
// stay in force, and the error names the file and line to fix.
func (p *Plugin) Reload() error {
	data, err := os.ReadFile(p.file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("password-file: %w (create it with: mqttd passwd %s USER)", err, p.file)
	}
	if err != nil {
		return fmt.Errorf("password-file: %w", err)
	}
	users, err := parse(p.file, data)
	if err != nil {
		return fmt.Errorf("password-file: %w", err)
	}
	p.users.Store(&users)
	return nil
}

// Users is the number of users loaded.
func (p *Plugin) Users() int { return len(*p.users.Load()) }

// Authenticate implements hooks.Authenticator.
func (p *Plugin) Authenticate(ctx context.Context, req *hooks.AuthRequest) (hooks.Decision, error) {
	name := req.Client.Username
	if name == "" {
		return hooks.Decision{}, nil // anonymous: not ours to judge
	}
	h, ok := (*p.users.Load())[name]
	if !ok {
		return hooks.Decision{}, nil // another plugin may know this user
	}
	if req.Password == nil {
		return hooks.Decision{Result: hooks.Deny, ReasonCode: ReasonBadCredentials, Reason: "password required"}, nil
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return hooks.Decision{}, fmt.Errorf("password-file: waiting to verify a password: %w", context.Cause(ctx))
	}
	match := h.verify(req.Password)
	<-p.sem
	if !match {
		return hooks.Decision{Result: hooks.Deny, ReasonCode: ReasonBadCredentials, Reason: "bad user name or password"}, nil
	}
	return hooks.Decision{Result: hooks.Allow}, nil
}
