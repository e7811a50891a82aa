package main

import (
	"fmt"
	"os"
	"sync"
)

// logFile is logging.file: the log is appended to it, and Reopen (on
// SIGHUP) opens the path again, so that after logrotate has renamed the
// file the broker writes to a new one instead of the renamed one.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	f, err := l.open()
	if err != nil {
		return nil, err
	}
	l.f = f
	return l, nil
}

func (l *logFile) open() (*os.File, error) {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logging.file: %w (mqttd runs as uid %d: the file's directory must be writable by that user; under systemd, LogsDirectory=mqttd makes /var/log/mqttd so)", err, os.Getuid())
	}
	return f, nil
}

// Write writes one log record; slog's handlers write a record in one call.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen switches to a freshly opened file at the same path. On error the
// log goes on into the file open before.
func (l *logFile) Reopen() error {
	f, err := l.open()
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
