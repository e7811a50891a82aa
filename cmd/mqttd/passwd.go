package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/mqttd/mqttd/internal/hooks/passwdfile"
)

const passwdUsage = `usage:
  mqttd passwd [--bcrypt] FILE USER    add USER to FILE, or change USER's password
  mqttd passwd -D FILE USER            delete USER from FILE

FILE is a password-file plugin's file; it is created (mode 0600) if missing,
and replaced atomically, keeping every other line and comment. The password
is read twice from the terminal without echo, or as one line from standard
input when that is not a terminal. New hashes are argon2id (m=19456 KiB, t=2,
p=1); --bcrypt writes a bcrypt hash instead (cost 10, passwords up to 72
bytes). Reload a running broker with SIGHUP.
`

// passwdInput is where passwd reads passwords; tests point it elsewhere.
var passwdInput = os.Stdin

// maxPassword is the longest password MQTT can carry (a two-byte length).
const maxPassword = 65535

// passwd is `mqttd passwd`. It takes its own flags, before or after FILE
// and USER.
func passwd(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("mqttd passwd", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	var useBcrypt, del bool
	flags.BoolVar(&useBcrypt, "bcrypt", false, "")
	flags.BoolVar(&del, "D", false, "")
	flags.BoolVar(&del, "delete", false, "")
	var pos []string
	for {
		switch err := flags.Parse(args); {
		case errors.Is(err, flag.ErrHelp):
			io.WriteString(stdout, passwdUsage)
			return exitOK
		case err != nil:
			fmt.Fprintf(stderr, "mqttd passwd: %v\n%s", err, passwdUsage)
			return exitUsage
		}
		if flags.NArg() == 0 {
			break
		}
		pos, args = append(pos, flags.Arg(0)), flags.Args()[1:]
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "mqttd passwd: want FILE and USER, got %d argument(s)\n%s", len(pos), passwdUsage)
		return exitUsage
	}
	if del && useBcrypt {
		fmt.Fprintf(stderr, "mqttd passwd: --bcrypt chooses the hash of a new password; it does not go with --delete\n")
		return exitUsage
	}
	file, user := pos[0], pos[1]
	if err := passwdfile.ValidUsername(user); err != nil {
		fmt.Fprintf(stderr, "mqttd passwd: %v; choose another name\n", err)
		return exitUsage
	}
	if err := editPasswdFile(file, user, del, useBcrypt, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mqttd passwd: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// editPasswdFile sets or deletes user's entry in file.
func editPasswdFile(file, user string, del, useBcrypt bool, stdout, prompt io.Writer) error {
	// Edit the file a symbolic link points to, rather than replace the link.
	if target, err := filepath.EvalSymlinks(file); err == nil {
		file = target
	}
	data, err := os.ReadFile(file)
	mode := fs.FileMode(0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if del {
			return fmt.Errorf("%s does not exist; nothing to delete", file)
		}
	case err != nil:
		return err
	default:
		if fi, err := os.Stat(file); err == nil {
			mode = fi.Mode().Perm()
		}
	}

	var out []byte
	var done string
	if del {
		var found bool
		if out, found = passwdfile.DeleteUser(data, user); !found {
			return fmt.Errorf("%s has no user %q; nothing changed", file, user)
		}
		done = "deleted user %q from %s\n"
	} else {
		pw, err := readPassword(passwdInput, prompt)
		if err != nil {
			return fmt.Errorf("%v; nothing changed", err)
		}
		hash := passwdfile.HashArgon2id
		if useBcrypt {
			hash = passwdfile.HashBcrypt
		}
		h, err := hash(pw)
		if err != nil {
			return fmt.Errorf("%v; nothing changed", err)
		}
		var added bool
		out, added = passwdfile.SetUser(data, user, h)
		done = "updated user %q in %s\n"
		if added {
			done = "added user %q to %s\n"
		}
	}
	// Another line may be broken; the broker would refuse the whole file,
	// so do not write one it cannot load.
	if err := passwdfile.Check(file, out); err != nil {
		return fmt.Errorf("%v; fix that line first (nothing changed)", err)
	}
	if err := writeFileAtomic(file, out, mode); err != nil {
		return err
	}
	fmt.Fprintf(stdout, done, user, file)
	return nil
}

// readPassword reads a password from in: twice without echo when in is a
// terminal (prompting on prompt), else the first line.
func readPassword(in *os.File, prompt io.Writer) ([]byte, error) {
	var pw []byte
	if fd := int(in.Fd()); term.IsTerminal(fd) {
		ask := func(p string) ([]byte, error) {
			io.WriteString(prompt, p)
			b, err := term.ReadPassword(fd)
			io.WriteString(prompt, "\n") // the user's Enter was not echoed either
			return b, err
		}
		var err error
		if pw, err = ask("Password: "); err != nil {
			return nil, fmt.Errorf("reading the password: %w", err)
		}
		again, err := ask("Reenter password: ")
		if err != nil {
			return nil, fmt.Errorf("reading the password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passwords do not match")
		}
	} else {
		line, err := bufio.NewReader(io.LimitReader(in, maxPassword+3)).ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading the password from standard input: %w", err)
		}
		if err == io.EOF && line == "" {
			return nil, errors.New("no password on standard input (pipe one line, or run on a terminal)")
		}
		pw = []byte(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
	}
	switch {
	case len(pw) == 0:
		return nil, errors.New("the password is empty")
	case len(pw) > maxPassword:
		return nil, fmt.Errorf("the password is longer than MQTT's %d bytes", maxPassword)
	}
	return pw, nil
}

// writeFileAtomic replaces path with data: it writes a temporary file
// beside it and renames that over path, so a reader (the broker reloading
// on SIGHUP) sees the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; not every system can sync a
	// directory, and the file is in place either way.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
