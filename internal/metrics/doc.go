// Package metrics exposes a quicsrv's counters to Prometheus, in a registry
// of its own (never the global one), with an HTTP handler that serves
// /metrics and /healthz.
//
// Counters that the server already keeps (session.Server.Stats,
// transport.Listener.Stats, relay.Relay.Stats) are read at scrape time by a
// collector instead of being duplicated. What no package counts is counted
// here from the session hooks: message and byte totals summed over
// connections, open channels, disconnects by error code, and sessions by
// whether they resumed with 0-RTT.
package metrics
