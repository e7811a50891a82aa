package pebblestore

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mqttd/mqttd/internal/filelock"
)

const lockName = "mqttd.lock"

// lockDir takes an exclusive flock on dir/mqttd.lock. flock belongs to the
// open file, so a second Open in the same process is refused too. Pebble
// takes its own LOCK as well; ours comes first so the refusal names the
// directory and says what to do.
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: cannot create its lock file: %w", dir, err)
	}
	if err := filelock.Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s is in use by another mqttd (its lock %s is held): stop that process or give this one another storage.dir: %w", dir, name, err)
	}
	// Who holds it, for an operator looking at the directory.
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

func unlockDir(f *os.File) {
	filelock.Unlock(f)
	f.Close()
}
