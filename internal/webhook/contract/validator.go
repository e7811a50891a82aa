package contract

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/mqttd/mqttd/api"
)

// Validator validates plugin requests and answers against api.Spec. It is
// safe for concurrent use.
type Validator struct {
	router routers.Router
	// paths are the spec's endpoint paths, longest first, so that a request
	// under a plugin url with a path prefix is matched on its last segment(s).
	paths []string
	opts  *openapi3filter.Options
}

// New loads and validates api.Spec and builds a Validator from it.
func New() (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		return nil, fmt.Errorf("contract: load api/openapi.yaml: %w", err)
	}
	// The servers entry is only an illustration: a plugin lives at whatever
	// url the config names, so routes are matched on the path alone.
	doc.Servers = nil
	ForbidUnknownFields(doc)
	// kin-openapi's own "byte" format accepts any run of base64 letters
	// ("abc" included); the broker writes padded standard base64, which is
	// what encoding/json makes of a []byte, so nothing looser may pass.
	doc.SetStringFormatValidator("byte", openapi3.NewCallbackValidator(func(s string) error {
		_, err := base64.StdEncoding.DecodeString(s)
		return err
	}))
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: api/openapi.yaml: %w", err)
	}
	paths := doc.Paths.InMatchingOrder()
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	return &Validator{
		router: router,
		paths:  paths,
		opts: &openapi3filter.Options{
			MultiError:            true,
			IncludeResponseStatus: true,
			// Path and reason only: the schema dump kin-openapi appends by
			// default runs to pages per failure.
			SchemaValidationOptions: append(doc.GetSchemaValidationOptions(), openapi3.DisableSchemaErrorDetails()),
		},
	}, nil
}

// ForbidUnknownFields sets additionalProperties: false on every object
// schema of doc that names its properties and says nothing about others, so
// a validator built on doc refuses a field the spec does not name (see the
// package doc for why the tests are stricter than the spec). Free-form
// objects, such as broker_pre_start's config, say additionalProperties: true
// and are left alone. The admin API's contract test uses it too.
func ForbidUnknownFields(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, sub := range list {
				walk(sub)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
}

// route finds the operation a request is for. The plugin's url may carry a
// path prefix (http://hooks:3000/mqtt), so the request path is matched on
// its ending: the longest spec path it ends with. The returned request is a
// shallow copy whose path is the spec's.
func (v *Validator) route(r *http.Request) (*routers.Route, *http.Request, error) {
	for _, p := range v.paths {
		if !strings.HasSuffix(r.URL.Path, p) {
			continue
		}
		u := *r.URL
		u.Path, u.RawPath = p, ""
		rr := r.Clone(r.Context())
		rr.URL = &u
		route, _, err := v.router.FindRoute(rr)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
		}
		return route, rr, nil
	}
	return nil, nil, fmt.Errorf("%s %s: no operation in api/openapi.yaml ends this path (%s)",
		r.Method, r.URL.Path, strings.Join(v.paths, ", "))
}

// Request validates a request a plugin received: method and path, headers,
// content type and body. body is the request body (r.Body is not read).
func (v *Validator) Request(r *http.Request, body []byte) error {
	route, rr, err := v.route(r)
	if err != nil {
		return err
	}
	rr.Body = io.NopCloser(bytes.NewReader(body))
	rr.ContentLength = int64(len(body))
	in := &openapi3filter.RequestValidationInput{Request: rr, Route: route, Options: v.opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

// Response validates a plugin's answer to r: its status must be one the
// spec lists for the operation, and a body must match that status's schema.
func (v *Validator) Response(r *http.Request, status int, header http.Header, body []byte) error {
	route, rr, err := v.route(r)
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: rr, Route: route, Options: v.opts},
		Status:                 status,
		Header:                 header,
		Options:                v.opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("answer %d to %s %s: %w", status, r.Method, r.URL.Path, err)
	}
	return nil
}
