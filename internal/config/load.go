package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// SearchPath is where Load looks, in order, when it is given no path. The
// first file that exists is used; when none does, the built-in defaults
// (plus the environment) apply.
var SearchPath = []string{
	"mqttd.yaml", "mqttd.yml", "mqttd.toml", "mqttd.json",
	"/etc/mqttd/mqttd.yaml", "/etc/mqttd/mqttd.yml", "/etc/mqttd/mqttd.toml", "/etc/mqttd/mqttd.json",
}

// EnvConfigFile is the variable the mqttd command reads the config path
// from when --config is not given. It is not a key, so Load does not warn
// about it.
const EnvConfigFile = EnvPrefix + "CONFIG"

type loader struct {
	file string // as the operator named it, for messages
	via  string // how the operator named it: "--config" or "$MQTTD_CONFIG"
}

// Load reads the configuration from path (YAML, TOML or JSON by its
// extension), or, when path is "", from the file $MQTTD_CONFIG names, else
// the first file of SearchPath that exists, else the built-in defaults. The
// environment overrides any of them (see the package documentation). Every
// problem found is reported, joined in one error whose parts are *Error.
func Load(path string) (*Config, error) {
	l := &loader{file: path, via: "--config"}
	if path == "" {
		l.via = "$" + EnvConfigFile
		if path = os.Getenv(EnvConfigFile); path == "" {
			p, err := search()
			if err != nil {
				return nil, err
			}
			path, l.via = p, "the search path"
		}
		l.file = path
	}

	var raw map[string]any
	dir := "."
	if path != "" {
		var err error
		if raw, err = l.readFile(path); err != nil {
			return nil, err
		}
		dir = filepath.Dir(path)
		if errs := l.checkKeys(raw, reflect.TypeFor[Config](), ""); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if errs := l.expandTree(raw, "", os.LookupEnv); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}

	v := viper.New()
	v.SetEnvPrefix(strings.TrimSuffix(EnvPrefix, "_"))
	v.SetEnvKeyReplacer(envKeyReplacer)
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()
	def := Default()
	setDefaults(v, reflect.ValueOf(def), "", raw)
	if raw != nil {
		if err := v.MergeConfigMap(raw); err != nil {
			return nil, &Error{Source: path, Msg: err.Error()}
		}
	}

	c := &Config{file: path, dir: dir}
	if err := v.Unmarshal(c, viper.DecodeHook(decodeHook)); err != nil {
		return nil, errors.Join(l.decodeErrors(err)...)
	}
	c.envSet = envOverrides(v.AllKeys())
	c.warns = unusedEnv(v.AllKeys())
	if errs := l.checkPluginKeys(raw, c); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if errs := l.validate(c); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if errs := l.loadTLS(c); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// search returns the first file of SearchPath that exists, or "".
func search() (string, error) {
	for _, p := range SearchPath {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return "", &Error{Source: p, Msg: "is a directory, not a config file (remove it or pass --config FILE)"}
		case err == nil:
			return p, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", &Error{Source: p, Msg: fmt.Sprintf("%v (fix its permissions or pass --config FILE)", err)}
		}
	}
	return "", nil
}

// readFile parses the file into a tree whose keys are lower-cased, as viper
// treats keys case-insensitively.
func (l *loader) readFile(path string) (map[string]any, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("is a directory, not a config file (%s must name the file itself, e.g. %s)",
			l.via, filepath.Join(path, "mqttd.yaml"))}
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".yaml" && ext != ".yml" && ext != ".toml" && ext != ".json" {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("unknown file type %q (name the file .yaml, .yml, .toml or .json)", ext)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, fs.ErrNotExist) && l.via == "$"+EnvConfigFile:
			msg = "no such file (the path came from $" + EnvConfigFile + ": fix it, or unset it to use the search path)"
		case errors.Is(err, fs.ErrNotExist):
			msg = "no such file (check the path given with " + l.via + ")"
		case errors.Is(err, fs.ErrPermission):
			return nil, &Error{Msg: Unreadable(path)}
		}
		return nil, &Error{Source: path, Msg: msg}
	}
	m := map[string]any{}
	switch ext {
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &m)
		if err != nil {
			err = yamlError(data, err)
		}
	case ".toml":
		err = toml.Unmarshal(data, &m)
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			err = fmt.Errorf("line %d column %d: not valid TOML: %v", row, col, de)
		}
	case ".json":
		if len(bytes.TrimSpace(data)) == 0 {
			break
		}
		err = json.Unmarshal(data, &m)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			err = fmt.Errorf("line %d: not valid JSON: %v", 1+bytes.Count(data[:se.Offset], []byte("\n")), se)
		} else if err != nil {
			err = fmt.Errorf("not valid JSON: %w", err)
		}
	}
	if err != nil {
		return nil, &Error{Source: path, Msg: err.Error()}
	}
	if m == nil {
		m = map[string]any{}
	}
	return lowerKeys(m), nil
}

// lowerKeys lower-cases every key and drops null values: "key:" with no
// value means the same as no key at all.
func lowerKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if v != nil {
			out[strings.ToLower(k)] = lowerValue(v)
		}
	}
	return out
}

func lowerValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return lowerKeys(x)
	case []any:
		for i := range x {
			x[i] = lowerValue(x[i])
		}
		return x
	case []map[string]any: // TOML arrays of tables
		out := make([]any, len(x))
		for i := range x {
			out[i] = lowerKeys(x[i])
		}
		return out
	}
	return v
}

// envOverrides maps each key set from the environment to its variable.
func envOverrides(keys []string) map[string]string {
	set := map[string]string{}
	for _, k := range keys {
		if _, ok := os.LookupEnv(EnvName(k)); ok {
			set[k] = EnvName(k)
		}
	}
	return set
}

// unusedEnv warns about MQTTD_ variables that name no key: most likely a
// typo. It is not an error, because platforms set MQTTD_* variables of
// their own (Kubernetes does for a service named mqttd).
func unusedEnv(keys []string) []string {
	known := map[string]bool{EnvConfigFile: true}
	for _, k := range keys {
		known[EnvName(k)] = true
	}
	var warns []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			warns = append(warns, fmt.Sprintf("environment variable %s names no config key and is ignored (e.g. MQTTD_LIMITS_MAX_INFLIGHT sets limits.max-inflight)", name))
		}
	}
	slices.Sort(warns)
	return warns
}
