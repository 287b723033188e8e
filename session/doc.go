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
// # Sending to clients
//
// [Session.Send] sends on a channel the session has open, whichever side
// opened it; it never opens one. On a channel the client has closed it fails
// with a [*ChannelClosedError] naming the channel (errors.Is
// [ErrChannelClosed]), so that an answer to a client that has left a channel
// cannot open a new channel the client never reads. [Session.SendOpen] and
// [Session.Open] open a channel on request, at most Config.MaxServerChannels
// at once per session ([*ChannelLimitError] beyond that). [Server.Broadcast]
// sends to every session that has the channel open without ever waiting: a
// session whose client asked to slow down, or whose channel's buffer is full,
// is skipped and reported in the [BroadcastResult].
//
// [Server.Shutdown] sends GOAWAY to every session, stops admitting new ones,
// and lets clients leave and the handler drain until its context ends.
package session
