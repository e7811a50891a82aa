package config

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// masked replaces the value of a secret in printed configurations.
const masked = "********"

// isSecret reports whether a key holds a secret by its name. TLS key
// entries are file paths, not secrets, and are shown.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "secret") || strings.Contains(k, "password") || strings.Contains(k, "token")
}

// Masked returns the effective configuration as a tree of kebab-case keys,
// durations and sizes as strings, secrets replaced by "********".
func (c *Config) Masked() map[string]any {
	var m map[string]any
	if err := c.node().Decode(&m); err != nil {
		panic(fmt.Sprintf("config: re-reading the printed configuration: %v", err)) // a bug, not an operator error
	}
	return m
}

// WriteYAML prints the effective configuration as YAML, in schema order,
// secrets masked, each value set from the environment marked with the
// variable it came from. The output is itself a valid config file.
func (c *Config) WriteYAML(w io.Writer) error {
	src := "built-in defaults (no config file found)"
	if c.file != "" {
		src = c.file
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: "effective mqttd configuration\nsource: " + src + ", then MQTTD_ environment variables\nsecrets are masked", Content: []*yaml.Node{c.node()}}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

func (c *Config) node() *yaml.Node {
	return c.sectionNode(reflect.ValueOf(*c), "", false)
}

// sectionNode renders a struct. Inside named entries (compact) zero values
// and empty sections are left out, so a plain tcp listener prints as
// {type, bind}.
func (c *Config) sectionNode(v reflect.Value, prefix string, compact bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	plugin, isPlugin := v.Interface().(Plugin)
	for _, f := range fieldsOf(v.Type()) {
		if isPlugin && plugin.Type != "" && !plugin.uses(f.key) {
			continue
		}
		key := join(prefix, f.key)
		fv := v.Field(f.index)
		var val *yaml.Node
		switch {
		case isSection(f.typ):
			val = c.sectionNode(fv, key, compact)
			if compact && len(val.Content) == 0 {
				continue
			}
		case isEntries(f.typ):
			val = &yaml.Node{Kind: yaml.MappingNode}
			names := make([]string, 0, fv.Len())
			for _, k := range fv.MapKeys() {
				names = append(names, k.String())
			}
			slices.Sort(names)
			for _, name := range names {
				val.Content = append(val.Content, scalar(name, "!!str"), c.sectionNode(fv.MapIndex(reflect.ValueOf(name)), join(key, name), true))
			}
		default:
			if compact && fv.IsZero() {
				continue
			}
			val = leafNode(fv, key)
			if env := c.envSet[key]; env != "" {
				val.LineComment = "from $" + env
			}
		}
		n.Content = append(n.Content, scalar(f.key, "!!str"), val)
	}
	return n
}

func leafNode(v reflect.Value, key string) *yaml.Node {
	switch v.Type() {
	case durationType:
		return scalar(formatDuration(time.Duration(v.Int())), "!!str")
	case byteSizeType:
		b := ByteSize(v.Int())
		if s := b.String(); s != strconv.FormatInt(v.Int(), 10) {
			return scalar(s, "!!str")
		}
		return scalar(b.String(), "!!int")
	}
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if s != "" && isSecret(key) {
			s = masked
		}
		return scalar(s, "!!str")
	case reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool()), "!!bool")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar(strconv.FormatUint(v.Uint(), 10), "!!int")
	}
	// Lists and free-form maps: let yaml render them, masking secrets by
	// key name inside free-form maps too.
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return scalar(fmt.Sprint(v.Interface()), "!!str")
	}
	maskTree(n)
	return n
}

func maskTree(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if isSecret(n.Content[i].Value) && n.Content[i+1].Kind == yaml.ScalarNode {
				n.Content[i+1] = scalar(masked, "!!str")
			}
		}
	}
	for _, ch := range n.Content {
		maskTree(ch)
	}
}

func scalar(s, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s}
}

// formatDuration prints 10s rather than 10s0ms-style noise: whole minutes
// and hours lose their trailing zero units.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
