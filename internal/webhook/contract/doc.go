// Package contract checks HTTP traffic against the plugin protocol in
// api/openapi.yaml, for tests. Validator validates one request (or answer);
// Recorder sits in front of a test plugin's handler and records every
// request that breaks the spec, so that a webhook test can assert that what
// the broker really sent is what the spec promises.
//
// The validator is stricter than the spec in one respect: the spec lets
// plugins ignore unknown fields (so the broker may add some later), but the
// broker under test is the spec's own version, so a field the spec does not
// name is a failure here; that catches misspelt keys that a merely optional
// field would let through.
package contract
