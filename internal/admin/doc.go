// Package admin is the broker's HTTP admin surface: GET /healthz, GET
// /readyz and GET /metrics (Prometheus), served by chi on the admin
// listener. The broker sits behind the small StatsSource interface so the
// handlers can be tested with a fake.
package admin
