package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Unreadable says why mqttd may not read path and how to fix it: the user
// it runs as, which in a container is the image's (uid 65532 in mqttd's
// own image) and not the owner of a file mounted from the host.
func Unreadable(path string) string {
	return fmt.Sprintf("cannot read %s: permission denied for uid %d (gid %d), the user mqttd runs as; "+
		"make the file and its directories readable by that user (chmod a+r %s, or chown it); "+
		"a file mounted into a container must be readable by the container's user", path, os.Getuid(), os.Getgid(), path)
}

// ExplainUnreadable adds Unreadable's advice to err when it comes from a
// file mqttd was not allowed to read, and returns other errors unchanged.
// Plugins read their own files (a password or ACL file); mqttd explains
// their errors with this where it builds them.
func ExplainUnreadable(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w\n  %s", err, Unreadable(pe.Path))
	}
	return err
}
