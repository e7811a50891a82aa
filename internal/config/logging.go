package config

import (
	"io"
	"log/slog"
)

// SlogLevel is the configured level; call it after Load, which validated it.
func (l Logging) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger returns a logger writing to w (mqttd passes stderr) in the
// configured format and at the configured level.
func (l Logging) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// LogFile is logging.file resolved against the config file's directory, or
// "" for stderr.
func (c *Config) LogFile() string { return c.resolve(c.Logging.File) }
