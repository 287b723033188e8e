// Package cluster links the relays of several quicsrv nodes through NATS:
// [Backplane] implements relay.Backplane over two nats.go connections: a
// main one with NoEcho for local messages and plain subscriptions, and one
// for queue subscriptions.
//
// Subjects and patterns map one to one: quicmsg's subjects are NATS
// subjects ("." separated tokens, "*" one token, ">" the rest). What NATS
// cannot carry is refused, counted and logged, never dropped silently: a
// subject or pattern with whitespace, a subject with an empty token, a
// header value with a line break or with a space or tab at either end, a
// request whose reply-to or msg-id would not fit in the NATS protocol
// line ([MaxRequestIDLen], [MaxControlLine]), and a message larger than
// the NATS server's max_payload ([TooLargeError]).
//
// Interest: the backplane holds one NATS subscription per (pattern, group)
// that has local subscriptions: Subscribe for group "", QueueSubscribe
// otherwise, with reference counts of the changes the relay reports, and
// unsubscribes when the count falls to zero. [Backplane.Interest] makes or
// ends the NATS subscription at once, without waiting for the network
// (the relay calls it holding none of its locks), so that the NATS server
// has it before any message the node publishes afterwards; for a new
// queue subscription, on the other connection, it waits for the server to
// confirm it (one round trip, at most QueueFlushTimeout, not while NATS is
// down).
//
// A node's plain subscriptions must not take its own messages (the relay
// has already delivered them locally). NATS keeps them away: they are
// published on the main connection, whose echo is off. Every message with
// headers carries the header [HeaderOrigin] with the node's ID as well, and
// a plain subscription skips its own node's; a message without headers
// goes without NATS headers, which receivers would otherwise parse into a
// map for every message. A queue subscription, on the other connection,
// takes the node's own messages, as NATS may pick this node for them: each
// message reaches one member of a group cluster-wide.
//
// While NATS is unreachable nats.go reconnects for ever and buffers what
// is published, up to Config.ReconnectBufSize bytes; beyond that Forward
// fails and the message is counted in Stats.Dropped under
// [DropNATSDown].
package cluster
