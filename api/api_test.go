package api

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// This file is the spec's lint, run in CI with the other tests: the document
// must be valid OpenAPI with every example valid against its schema, every
// request and answer must have an example, every property a description,
// and both discriminated unions must map each of their values to the schema
// whose tag holds that value.

func load(t *testing.T, spec []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return doc
}

func TestSpecIsValid(t *testing.T) {
	doc := load(t, Spec)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi: %s, want 3.0.3 (oapi-codegen's best-supported version)", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(),
		openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatal(err)
	}
}

func TestLint(t *testing.T) {
	doc := load(t, Spec)
	for _, p := range lint(doc) {
		t.Error(p)
	}
}

// eventTypes are docs/design.md §3.3's event names.
var eventTypes = []string{
	"broker_pre_start", "broker_post_start", "broker_pre_shutdown", "broker_post_shutdown",
	"broker_client_connected", "broker_client_disconnected", "broker_client_subscribed",
	"broker_client_unsubscribed", "broker_message_received", "broker_message_broadcast",
	"broker_retained_message", "mqtt_packet_received", "mqtt_packet_sent",
}

// packetTypes are the MQTT control packets.
var packetTypes = []string{
	"connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe",
	"suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth",
}

// lint returns every problem it finds in doc, one line each.
func lint(doc *openapi3.T) []string {
	var out []string
	out = append(out, lintExamples(doc)...)
	out = append(out, lintDescriptions(doc)...)
	out = append(out, lintUnion(doc, "Event", "type", eventTypes)...)
	out = append(out, lintUnion(doc, "Packet", "packet_type", packetTypes)...)
	if s := doc.Components.Schemas["EventType"]; s == nil || !sameSet(s.Value.Enum, eventTypes) {
		out = append(out, "schema EventType: enum must be exactly the 13 event types")
	}
	return out
}

// lintExamples checks that every request body and every answer with a body
// has an example.
func lintExamples(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if rb := op.RequestBody; rb != nil {
				out = append(out, mediaExamples(where+" request", rb.Value.Content)...)
			}
			for status, resp := range op.Responses.Map() {
				out = append(out, mediaExamples(fmt.Sprintf("%s answer %s", where, status), resp.Value.Content)...)
			}
		}
	}
	return out
}

func mediaExamples(where string, content openapi3.Content) []string {
	var out []string
	for mime, mt := range content {
		if mt.Example == nil && len(mt.Examples) == 0 && (mt.Schema == nil || mt.Schema.Value.Example == nil) {
			out = append(out, fmt.Sprintf("%s (%s): no example", where, mime))
		}
	}
	return out
}

// lintDescriptions checks that every component schema, and every property
// of every object schema reachable from them, has a description. A
// property that is a $ref takes the referenced schema's (OpenAPI 3.0
// ignores siblings of $ref).
func lintDescriptions(doc *openapi3.T) []string {
	var out []string
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, s *openapi3.Schema)
	walk = func(where string, s *openapi3.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		for name, p := range s.Properties {
			if p.Value.Description == "" {
				out = append(out, fmt.Sprintf("%s.%s: no description", where, name))
			}
			walk(where+"."+name, p.Value)
		}
		if s.Items != nil {
			walk(where+"[]", s.Items.Value)
		}
	}
	for name, s := range doc.Components.Schemas {
		if s.Value.Description == "" {
			out = append(out, fmt.Sprintf("schema %s: no description", name))
		}
		walk(name, s.Value)
	}
	sort.Strings(out)
	return out
}

// lintUnion checks a oneOf discriminated on tag: its mapping names exactly
// want, its oneOf lists exactly the mapped schemas, and each mapped schema
// requires tag as a one-value enum holding its own key (which is what lets
// oapi-codegen's From* helpers and openapi-typescript narrow on it) and has
// an example.
func lintUnion(doc *openapi3.T, name, tag string, want []string) []string {
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value.Discriminator == nil {
		return []string{fmt.Sprintf("schema %s: not a discriminated union", name)}
	}
	u := ref.Value
	var out []string
	if u.Discriminator.PropertyName != tag {
		out = append(out, fmt.Sprintf("schema %s: discriminator is %q, want %q", name, u.Discriminator.PropertyName, tag))
	}
	keys := make([]string, 0, len(u.Discriminator.Mapping))
	for k := range u.Discriminator.Mapping {
		keys = append(keys, k)
	}
	if !sameSet(toAny(keys), want) {
		out = append(out, fmt.Sprintf("schema %s: mapping has %v, want %v", name, keys, want))
	}
	var oneOf []string
	for _, s := range u.OneOf {
		oneOf = append(oneOf, s.Ref)
	}
	for _, key := range want {
		target := u.Discriminator.Mapping[key].Ref
		if !slices.Contains(oneOf, target) {
			out = append(out, fmt.Sprintf("schema %s: %s maps to %q, which oneOf does not list", name, key, target))
			continue
		}
		variant := doc.Components.Schemas[strings.TrimPrefix(target, "#/components/schemas/")]
		if variant == nil {
			out = append(out, fmt.Sprintf("schema %s: %s maps to missing %q", name, key, target))
			continue
		}
		v := variant.Value
		if p := v.Properties[tag]; p == nil || !slices.Contains(v.Required, tag) || !sameSet(p.Value.Enum, []string{key}) {
			out = append(out, fmt.Sprintf("%s: %s must be required with enum [%s]", target, tag, key))
		}
		if v.Example == nil {
			out = append(out, fmt.Sprintf("%s: no example", target))
		}
	}
	if len(oneOf) != len(want) {
		out = append(out, fmt.Sprintf("schema %s: oneOf lists %d schemas, want %d", name, len(oneOf), len(want)))
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// sameSet reports whether got holds exactly the strings of want.
func sameSet(got []any, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, g := range got {
		s, ok := g.(string)
		if !ok || !slices.Contains(want, s) {
			return false
		}
	}
	return true
}

// TestLintCatches breaks a fresh copy of the spec in each way the lint
// guards against and checks that the lint (or validation) says so.
func TestLintCatches(t *testing.T) {
	schema := func(doc *openapi3.T, name string) *openapi3.Schema { return doc.Components.Schemas[name].Value }
	cases := map[string]struct {
		breakIt func(doc *openapi3.T)
		want    string
	}{
		"property without description": {func(doc *openapi3.T) {
			schema(doc, "Message").Properties["retain"].Value.Description = ""
		}, ".retain: no description"}, // reached through Message or any schema using it, whichever the walk meets first
		"request without example": {func(doc *openapi3.T) {
			doc.Paths.Value("/topic_filtering").Post.RequestBody.Value.Content["application/json"].Example = nil
			schema(doc, "TopicFilteringRequest").Example = nil
		}, "POST /topic_filtering request (application/json): no example"},
		"answer without example": {func(doc *openapi3.T) {
			doc.Paths.Value("/manifest").Get.Responses.Value("200").Value.Content["application/json"].Example = nil
			schema(doc, "Manifest").Example = nil
		}, "GET /manifest answer 200 (application/json): no example"},
		"event type missing from the mapping": {func(doc *openapi3.T) {
			delete(schema(doc, "Event").Discriminator.Mapping, "mqtt_packet_sent")
		}, "schema Event: mapping has"},
		"variant tagged with another value": {func(doc *openapi3.T) {
			schema(doc, "PubrecPacket").Properties["packet_type"].Value.Enum = []any{"puback"}
		}, "PubrecPacket: packet_type must be required with enum [pubrec]"},
		"event without example": {func(doc *openapi3.T) {
			schema(doc, "BrokerRetainedMessageEvent").Example = nil
		}, "BrokerRetainedMessageEvent: no example"},
		"EventType short of one": {func(doc *openapi3.T) {
			s := schema(doc, "EventType")
			s.Enum = s.Enum[:12]
		}, "schema EventType: enum must be exactly the 13 event types"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := load(t, Spec)
			c.breakIt(doc)
			problems := lint(doc)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Fatalf("lint missed it; want %q in %q", c.want, problems)
			}
		})
	}
	t.Run("example that breaks its schema", func(t *testing.T) {
		doc := load(t, Spec)
		schema(doc, "Session").Example.(map[string]any)["protocol_version"] = 6
		if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err == nil {
			t.Fatal("validation accepted a Session example with protocol_version 6")
		}
	})
}
