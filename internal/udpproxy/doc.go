// Package udpproxy is a user-space UDP relay for tests that injects network
// faults between a QUIC (or any UDP) client and server running on loopback.
//
// The kernel used in CI offers no netem, so tests that want latency, loss,
// reordering, duplication or partitions route their traffic through a Proxy:
// the server listens on 127.0.0.1, the proxy is created with the server's
// address, and the client dials [Proxy.Addr] instead of the server.
//
//	client ──► Proxy.Addr() ──(ToServer faults)──► server
//	client ◄──────────────────(ToClient faults)◄── server
//
// Every client address seen by the proxy gets its own upstream socket towards
// the server, so several clients can share one proxy and the server sees each
// of them under a distinct source port. Faults are configured per [Direction]
// and may be changed at any time from any goroutine.
//
// The package is meant for tests only: it refuses to relay to anything that
// is not a loopback address, copies every datagram, and makes no attempt at
// performance. Limits that keep a misbehaving test bounded:
//
//   - each per-client, per-direction delay queue holds at most
//     [Config.QueueLimit] datagrams (default [DefaultQueueLimit]); datagrams
//     arriving at a full queue are dropped and counted both in
//     [DirStats.Dropped] and [DirStats.Overflowed];
//   - a client mapping (its upstream socket and goroutines) is removed after
//     [Config.IdleTimeout] without traffic in either direction (default
//     [DefaultIdleTimeout]). A later datagram from the same client creates a
//     fresh mapping with a new upstream port, like a NAT rebinding.
//
// [Proxy.Rebind] (every client) and [Proxy.RebindClient] (one) simulate a NAT
// rebinding on demand: the mapping keeps its client side and its queues, but
// its upstream socket is replaced by one on a new port, so the server sees the
// client's datagrams arrive from a new source address mid-connection, and what
// it sends to the old address is lost. A QUIC server follows such a client
// once the client sends on the new path (see the tests in transport and
// client).
//
// [Proxy.Close] stops and waits for every goroutine the proxy started.
package udpproxy
