// Package cluster links the relays of several quicsrv nodes through NATS:
// [Backplane] implements relay.Backplane over two nats.go connections: a
// main one with NoEcho for local messages and plain subscriptions, and one
// with echo for queue subscriptions and requests.
//
// Subjects and patterns map one to one: quicmsg's subjects are NATS
// subjects ("." separated tokens, "*" one token, ">" the rest). What NATS
// cannot carry is refused, counted and logged, never dropped silently: a
// subject or pattern with whitespace, a header value with a line break,
// and a message larger than the NATS server's max_payload
// ([TooLargeError]).
//
// Interest: the backplane holds one NATS subscription per (pattern, group)
// that has local subscriptions: Subscribe for group "", QueueSubscribe
// otherwise, with reference counts of the changes the relay reports, and
// unsubscribes when the count falls to zero. One goroutine owns the NATS
// subscriptions and brings them in line with the counts, so that the
// relay never waits for NATS under its locks.
//
// A node's plain subscriptions must not take its own messages (the relay
// has already delivered them locally). NATS keeps them away: they are
// published on the main connection, whose echo is off. Requests, which go
// on the queue connection, and every message with headers carry the header
// [HeaderOrigin] with the node's ID, and a plain subscription skips its own
// node's; a message without headers goes without NATS headers, which
// receivers would otherwise parse into a map for every message. A queue
// subscription takes the node's own messages, as NATS may pick this node
// for them: each message reaches one member of a group cluster-wide.
//
// While NATS is unreachable nats.go reconnects for ever and buffers what
// is published, up to Config.ReconnectBufSize bytes; beyond that Forward
// fails and the message is counted in Stats.Dropped under
// [DropNATSDown].
package cluster
