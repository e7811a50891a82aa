// Package admin is the broker's HTTP admin surface, served by chi on the
// admin listener: GET /healthz, GET /readyz and GET /metrics (Prometheus)
// for probes and scrapers, and the operator's REST API under /api/v1
// (api/admin.yaml: clients, sessions, kicks, subscriptions, retained
// messages, publish, plugins, cache purges, refusals, counters). Guard
// puts the token and browser-safety rules in front of all of it. The
// broker sits behind small interfaces (StatsSource, Broker) so handlers
// can be tested with fakes as well as with a real broker.
package admin
