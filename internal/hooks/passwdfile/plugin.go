// Package passwdfile is the password-file built-in plugin: it
// authenticates CONNECTs against a file of username:hash lines, the hashes
// argon2id (PHC string form) or bcrypt, as written by `mqttd passwd`.
//
// A client that gives a user name is judged by the file: Allow for a listed
// user with the right password, else Deny with 0x86 (bad user name or
// password), a name the file does not list included. Without that, a
// client claiming a name nobody wrote down would fall through to
// auth.allow-anonymous and, where the ACL has rules for that name, gain
// its rights. An unknown name gets the same answer as a wrong password,
// after as much hashing work, so neither the CONNACK nor its timing tells
// which names exist. A client without a user name gets Ignore: another
// plugin, or auth.allow-anonymous, decides.
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

// Plugin is a password-file plugin. It implements hooks.AuthPlugin.
type Plugin struct {
	file  string
	users atomic.Pointer[table]
	// sem holds one token per verification in progress.
	sem chan struct{}
}

var _ hooks.AuthPlugin = (*Plugin)(nil)

// ReasonBadCredentials is the MQTT 5 reason code of a wrong password:
// 0x86, bad user name or password (3.1.1 clients hear 0x04).
const ReasonBadCredentials = 0x86

// New loads o.File. A missing file or one that does not parse is an
// error naming the file (and line), so the broker does not start with a
// password file it cannot use.
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

// Reload reads the file again and applies it: Prepare, then its commit.
// Clients keep their connections; the new entries apply from the next
// CONNECT. On error the entries loaded before stay in force, and the error
// names the file and line to fix.
func (p *Plugin) Reload() error {
	commit, err := p.Prepare()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare reads and parses the file without applying it; commit applies
// what it read, at once. A reload of several plugins prepares them all
// first and commits only when none failed, so a failed reload changes
// nothing. On error nothing is pending and the error names the file and
// line to fix.
func (p *Plugin) Prepare() (commit func(), err error) {
	data, err := os.ReadFile(p.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("password-file: %w (create it with: mqttd passwd %s USER)", err, p.file)
	}
	if err != nil {
		return nil, fmt.Errorf("password-file: %w", err)
	}
	users, err := parse(p.file, data)
	if err != nil {
		return nil, fmt.Errorf("password-file: %w", err)
	}
	return func() { p.users.Store(users) }, nil
}

// Users is the number of users loaded.
func (p *Plugin) Users() int { return len(p.users.Load().byName) }

// Authenticate implements hooks.AuthPlugin: Ignore for a client
// without a user name; for one with a name, Allow when the file lists it
// with that password and Deny with ReasonBadCredentials otherwise (no
// password given included). It returns an error only when ctx ends while
// it waits for a hashing slot.
func (p *Plugin) Authenticate(ctx context.Context, req *hooks.AuthRequest) (hooks.Decision, error) {
	name := req.Client.Username
	if name == "" {
		return hooks.Decision{}, nil // anonymous: auth.allow-anonymous (or another plugin) decides
	}
	if req.Password == nil {
		return deny("password required"), nil
	}
	users := p.users.Load()
	h, known := users.byName[name]
	if !known {
		h = users.decoy // hash anyway, so the answer takes as long as for a listed user
	}
	if h == nil {
		return deny("bad user name or password"), nil // the file lists nobody
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return hooks.Decision{}, fmt.Errorf("password-file: waiting to verify a password: %w", context.Cause(ctx))
	}
	match := h.verify(req.Password)
	<-p.sem
	if !known || !match {
		return deny("bad user name or password"), nil
	}
	return hooks.Decision{Result: hooks.Allow}, nil
}

func deny(reason string) hooks.Decision {
	return hooks.Decision{Result: hooks.Deny, ReasonCode: ReasonBadCredentials, Reason: reason}
}
