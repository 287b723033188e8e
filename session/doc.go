// Package session is the server side of quicmsg. A [Server] serves a
// [transport.Listener]: every accepted connection becomes a [Session], tracked
// while the connection lives and removed as soon as the connection's context
// ends, whatever ended it (clean close, error, idle timeout, a client that
// vanished without a word). There is no sweeper: removal is driven by the
// connection itself.
//
// Messages from a session's channels go to a [Handler], one at a time per
// session, in arrival order per channel. Between the network and the handler
// sits a bounded pending queue (Config.PendingCap, default 1000 messages).
// At the cap the session signals slow-down to its client; under
// [OverflowBlock] it also stops reading, so that QUIC flow control stops the
// sender, and signals resume below half the cap. Under [OverflowDisconnect]
// it keeps reading but disconnects a client that pushes on to twice the cap
// with transport.CodeOverloaded. Either way memory per session is bounded and
// no message the handler was given is lost or reordered.
//
// [Server.Shutdown] sends GOAWAY to every session, stops admitting new ones,
// and lets clients leave and the handler drain until its context ends.
package session
