package config

import (
	"fmt"
	"os"
	"strings"
)

// Error is one problem with the configuration. Its message names where the
// value came from (the file, or the MQTTD_ variable that overrode it), the
// key, the value and what would be accepted.
type Error struct {
	Source string // the config file, or "$MQTTD_..." when the value came from the environment; "" for the defaults
	Key    string // the key path, e.g. "limits.connect-timeout"; "" for file-level problems
	Msg    string // the value and what would be accepted, e.g. `"5" is not a duration (e.g. 500ms, 2s)`
}

// Error formats the problem as "config: source: key: message", leaving out
// the parts that are empty, so an operator sees where to look first.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "MQTTD_"

// EnvName is the environment variable that overrides key:
// MQTTD_ + the key path upper-cased, "." and "-" as "_".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(envKeyReplacer.Replace(key))
}

var envKeyReplacer = strings.NewReplacer(".", "_", "-", "_")

// source says where the value of key came from: its MQTTD_ variable when
// that is set, else the file.
func (l *loader) source(key string) string {
	if key != "" {
		if _, ok := os.LookupEnv(EnvName(key)); ok {
			return "$" + EnvName(key)
		}
	}
	return l.file
}

func (l *loader) errorf(key, format string, args ...any) *Error {
	return &Error{Source: l.source(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}
