// Package api holds mqttd's plugin protocol, api/openapi.yaml: what an HTTP
// plugin service implements (docs/design.md §4). The spec is embedded here, beside
// the file, because go:embed cannot reach a parent directory; the contract
// validator (internal/webhook/contract) and the spec lint read it from Spec.
// The Go types and client are generated from the same file into
// internal/webhook/wire.
package api

import _ "embed"

// Spec is the OpenAPI 3.0 document of the plugin protocol, as YAML.
//
//go:embed openapi.yaml
var Spec []byte

// AdminSpec is the OpenAPI 3.0 document of the broker's admin REST API
// (api/admin.yaml), as YAML. Its Go types are generated into
// internal/admin/adminapi.
//
//go:embed admin.yaml
var AdminSpec []byte
