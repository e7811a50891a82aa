package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// The schema is the Config struct itself. A struct field is a section
// (a map of known keys), a map[string]struct field is a set of named
// entries (names free, keys inside them known), anything else is a leaf.
// A map[string]any leaf is free-form and never checked.

type field struct {
	key   string
	doc   string
	index int
	typ   reflect.Type
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(sf.Tag.Get("mapstructure"), ",")
		if key == "" || key == "-" {
			continue
		}
		fs = append(fs, field{key: key, doc: sf.Tag.Get("doc"), index: i, typ: sf.Type})
	}
	return fs
}

func isSection(t reflect.Type) bool { return t.Kind() == reflect.Struct }

func isEntries(t reflect.Type) bool {
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Struct
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// entryName is what a listener (or any named entry) may be called: it
// becomes part of key paths and of MQTTD_ variable names.
var entryName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// checkKeys reports every key of the file that the schema does not know,
// and every section that is not a map. m is what the file holds under
// prefix; t is the schema type there.
func (l *loader) checkKeys(m map[string]any, t reflect.Type, prefix string) []error {
	var errs []error
	fs := fieldsOf(t)
	for _, k := range sortedKeys(m) {
		v := m[k]
		key := join(prefix, k)
		i := indexOf(fs, k)
		if i < 0 {
			errs = append(errs, l.unknownKey(key, fs))
			continue
		}
		f := fs[i]
		switch {
		case isSection(f.typ):
			errs = append(errs, l.checkSection(v, f.typ, key)...)
		case isEntries(f.typ):
			if v == nil {
				continue
			}
			entries, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, l.errorf(key, "%s is not a map of names to entries (e.g. %s: {default: {...}})", show(v), f.key))
				continue
			}
			for _, name := range sortedKeys(entries) {
				if !entryName.MatchString(name) {
					errs = append(errs, l.errorf(key, "%q is not a valid name (use lower-case letters, digits, - and _)", name))
					continue
				}
				errs = append(errs, l.checkSection(entries[name], f.typ.Elem(), join(key, name))...)
			}
		}
	}
	return errs
}

func (l *loader) checkSection(v any, t reflect.Type, key string) []error {
	if v == nil {
		return nil
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return []error{l.errorf(key, "%s is not a section (expected a map with keys %s)", show(v), knownList(fieldsOf(t)))}
	}
	return l.checkKeys(sub, t, key)
}

func (l *loader) unknownKey(key string, siblings []field) error {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := l.suggest(key, siblings); s != "" {
		msg += fmt.Sprintf(" (did you mean %q? known: %s)", s, knownList(siblings))
	} else {
		msg += fmt.Sprintf(" (known: %s)", knownList(siblings))
	}
	return &Error{Source: l.source(""), Msg: msg}
}

// suggest finds the key the operator probably meant: a sibling a couple of
// typos away, or the same name in another section.
func (l *loader) suggest(key string, siblings []field) string {
	prefix, last := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		prefix, last = key[:i], key[i+1:]
	}
	// Up to two edits for short names, three for longer ones.
	best, bestD := "", 3
	if len(last) >= 8 {
		bestD = 4
	}
	for _, f := range siblings {
		if d := editDistance(last, f.key); d < bestD {
			best, bestD = join(prefix, f.key), d
		}
	}
	if best != "" {
		return best
	}
	for _, k := range schemaKeys(reflect.TypeFor[Config](), "") {
		if strings.HasSuffix(k, "."+last) {
			return k
		}
	}
	return ""
}

func knownList(fs []field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.key
	}
	return strings.Join(names, ", ")
}

func indexOf(fs []field, key string) int {
	for i, f := range fs {
		if f.key == key {
			return i
		}
	}
	return -1
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// schemaKeys lists every leaf key path of t; entries appear as "<name>".
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for _, f := range fieldsOf(t) {
		key := join(prefix, f.key)
		switch {
		case isSection(f.typ):
			keys = append(keys, schemaKeys(f.typ, key)...)
		case isEntries(f.typ):
			keys = append(keys, schemaKeys(f.typ.Elem(), join(key, "<name>"))...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

// setDefaults registers a default for every leaf key, so that viper knows
// the key and AutomaticEnv can override it even when the file is silent.
// Named entries take their defaults from def only when the file has no such
// section; entries the file names get zero defaults for each of their keys,
// so MQTTD_LISTENERS_<NAME>_<KEY> reaches them too.
func setDefaults(v *viper.Viper, def reflect.Value, prefix string, file map[string]any) {
	for _, f := range fieldsOf(def.Type()) {
		key := join(prefix, f.key)
		fv := def.Field(f.index)
		switch {
		case isSection(f.typ):
			sub, _ := file[f.key].(map[string]any)
			setDefaults(v, fv, key, sub)
		case isEntries(f.typ):
			inFile, ok := file[f.key].(map[string]any)
			if ok || file[f.key] != nil {
				zero := entryDefault(f.typ.Elem())
				for name := range inFile {
					sub, _ := inFile[name].(map[string]any)
					setDefaults(v, zero, join(key, name), sub)
				}
				continue
			}
			for _, name := range fv.MapKeys() {
				setDefaults(v, fv.MapIndex(name), join(key, name.String()), nil)
			}
		default:
			v.SetDefault(key, defaultValue(fv))
		}
	}
}

func defaultValue(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return v.Interface()
	case v.Type() == byteSizeType:
		return v.Int()
	}
	return v.Interface()
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
