// Package webhook is the plugin that speaks HTTP: a plugin alias whose
// authenticate and topic_filtering decisions and events are answered by a
// remote service, in any language, implementing api/openapi.yaml
// (docs/design.md §4).
//
// A decision goes: salted key → LRU cache (fresh hit: done, no allocation)
// → identical concurrent misses collapsed into one call → circuit breaker →
// POST with a per-call timeout, signed, redirects refused, answer capped →
// the answer rules (2xx body, 204 allow, 401/403 deny, anything else an
// error) → cached for as long as the answer and the policy allow. Errors
// are typed by Kind and returned; the hooks chain applies the on-error
// policy, except "stale", which needs this cache and is served here.
//
// Events never touch the caller: Event filters by what the plugin wants
// and hands over to a batch.Pipeline, which batches, retries and drains
// them; this package encodes each event and POSTs each batch.
//
// Sub-packages: cache (keys, LRU, lifetimes), signing (X-Mqttd-Signature),
// batch (event delivery), wire (generated from the spec), contract (the
// spec as a test oracle).
package webhook
