package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
)

// KeyDoc documents one key for the reference table.
type KeyDoc struct {
	Key     string // e.g. limits.max-inflight; entries as listeners.<name>.type
	Default string // as an operator would write it: the ref tag, else the Go default
	Env     string // the MQTTD_ variable that overrides it; "" for map entries
	Doc     string // the doc tag: one line, what the key does
}

// Reference lists every key of the schema with its default and variable,
// in schema order.
func Reference() []KeyDoc {
	return refSection(reflect.ValueOf(Default()), "")
}

func refSection(v reflect.Value, prefix string) []KeyDoc {
	var out []KeyDoc
	t := v.Type()
	for _, f := range fieldsOf(t) {
		key := join(prefix, f.key)
		fv := v.Field(f.index)
		ref, hasRef := t.Field(f.index).Tag.Lookup("ref")
		switch {
		case isSection(f.typ):
			out = append(out, refSection(fv, key)...)
		case isEntries(f.typ):
			c := Config{}
			var entries []string
			for _, name := range fv.MapKeys() {
				n := c.sectionNode(fv.MapIndex(name), "", true)
				var parts []string
				for i := 0; i+1 < len(n.Content); i += 2 {
					parts = append(parts, fmt.Sprintf("%s: %q", n.Content[i].Value, n.Content[i+1].Value))
				}
				entries = append(entries, fmt.Sprintf("%s: {%s}", name.String(), strings.Join(parts, ", ")))
			}
			out = append(out, KeyDoc{Key: key, Default: "{" + strings.Join(entries, ", ") + "}", Doc: f.doc})
			out = append(out, refSection(entryDefault(f.typ.Elem()), join(key, "<name>"))...)
		default:
			d := ref
			if !hasRef {
				d = leafNode(fv, key).Value
				if d == "" {
					d = `""`
				}
			}
			out = append(out, KeyDoc{Key: key, Default: d, Env: EnvName(key), Doc: f.doc})
		}
	}
	return out
}

// WriteReference prints Reference as a Markdown table: the configuration
// reference of the README, which a test keeps equal to this output.
func WriteReference(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| key | default | environment | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, k := range Reference() {
		env := ""
		if k.Env != "" {
			env = "`" + k.Env + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Key, cell(k.Default), env, cell(k.Doc))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
