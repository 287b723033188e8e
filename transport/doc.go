// Package transport is the quicmsg wire: QUIC connections with mandatory TLS
// 1.3, one QUIC stream per named message channel, length-prefixed message
// frames, flow signals (slow down, resume, go away) and typed errors. The
// protocol is specified in PROTOCOL.md at the root of the module.
//
// A server calls [Listen] and [Listener.Accept]; a client calls [Dial]. Both
// get a [*Conn], on which either side opens channels with [Conn.OpenChannel]
// and accepts the peer's with [Conn.AcceptChannel], or hands each to a
// function with [Conn.ServeChannels], which holds one goroutine fewer per
// connection (the caller's own takes the streams). A [*Channel] carries
// messages in order in both directions, independently of other channels:
// a lost packet on one channel does not hold up the others.
//
// # Sending
//
// [Channel.Send] copies the message into the channel's bounded send buffer
// and returns; the channel's writer coalesces buffered messages into large
// stream writes under load and writes a lone message at once. Send waits
// while the buffer or the acknowledgement window is full or the peer has
// signalled slow-down; [Channel.TrySend] fails with [ErrWouldBlock] (or
// [ErrAckWindowFull]) or [ErrSlowDown] instead.
// [Channel.Flush] waits until accepted messages are written.
//
// # Delivery
//
// Within a live connection, QUIC delivers what was written reliably and in
// order per channel. [Conn.Shutdown], [Conn.Close], [Channel.Shutdown] and
// [Channel.Close] are graceful: they write everything Send accepted and, for
// a connection, wait until the peer has read it and closed too: Shutdown
// until its context ends, Close for at most Config.CloseTimeout.
// [Conn.CloseWithError] and [Channel.Reset] close at once. If a connection
// dies, messages accepted but not yet acknowledged by the peer application
// are in doubt; [Conn.Stats] counts messages accepted and written.
//
// # Acknowledgements
//
// Unless either side sets Config.DisableAcks, the receiver acknowledges
// each channel's messages as Receive returns them (cumulative counts in
// coalesced ACK frames on the control stream) and the sender keeps what
// it wrote until acknowledged ([Conn.AcksEnabled]). This bounds each
// channel end to end: at most Config.AckWindow bytes written and not yet
// acknowledged, plus buffered, after which Send waits and TrySend fails
// with [ErrAckWindowFull]. After a failure, [Channel.Unacked] lists
// exactly the written messages the peer had not acknowledged (then
// [Channel.Unsent] what was never written), [Channel.Acked] counts the
// rest, and [Channel.InDoubt] equals len(Unacked()).
//
// # 0-RTT and replays
//
// A [Listener] with Config.Allow0RTT accepts early data from resuming
// clients ([DialEarly]); only messages sent with Channel.SendReplaySafe ride
// it. TLS 1.3 early data can be replayed: anyone on the path can send a
// captured first flight again. The Listener therefore lets each session
// ticket carry early data once (RFC 8446, section 8.1): every ticket it
// issues holds a random ID and its issue time, and a ticket presented again,
// one without an ID, or one issued more than Config.EarlyDataWindow ago
// resumes without early data. Such a connection is not refused: its early
// data is, and the handshake continues with a full round trip, which an
// attacker replaying a flight cannot complete. A client whose early data was
// refused sees [ErrEarlyDataRejected] and sends it again (package client
// does so by itself). A client that reconnects before its connection
// brought it a new ticket resumes without 0-RTT for the same reason.
//
// The register of used tickets is bounded by Config.ReplayCacheSize; when it
// is full the oldest entry is forgotten and every ticket issued no later
// than it loses 0-RTT, so that a full register never admits a replay. A
// peer that makes many handshakes and spends their tickets can fill it and
// so cost other clients their 0-RTT (a round trip each), never a replay.
// [ListenerStats].EarlyDataRefused counts refusals.
//
// Limits: the register lives in one server process. A restart empties it,
// so a flight captured before a restart can be replayed once after it while
// its ticket is younger than EarlyDataWindow (tickets keep resuming across
// restarts when the ticket keys are kept; shorten EarlyDataWindow to narrow
// this). Servers that share ticket keys behind one address do not share the
// register: a ticket used on one can be replayed once on each other. A
// cluster needs per-server ticket keys, or a shared register behind
// tls.Config.WrapSession and UnwrapSession, which the check calls inside
// its own. tls.Config.GetConfigForClient cannot be used with Allow0RTT,
// because the check would not see the tickets of the configs it returns.
//
// # Moving to another address
//
// A client's connection can move to another local UDP socket without a
// reconnect: [Conn.MigrateAddr] opens one on a given address and owns it,
// [Conn.Migrate] uses a [quic.Transport] of the caller's. The path is probed
// first and the connection switches only once the server answered; channels
// and the session carry on, and the server's [Conn.RemoteAddr] follows.
// Only the client side can move. Failures are [*MigrationError]s that leave
// the connection where it was.
//
// # Round trips, modes and capabilities
//
// [Conn.Ping] times a PING/PONG on the control stream: the round trip of
// the connection, whatever the peer does with messages. Each side's HELLO
// announces what it supports, read with [Conn.PeerCapabilities], and a
// server may announce its mode (Config.Mode: [ModeRelay], [ModeEcho] or an
// application's own), read with [Conn.PeerMode], so that a client can
// refuse at once a server that cannot serve it. An operation the peer
// did not announce support for fails with a [*CapabilityError] and sends
// nothing: a peer of an older release is never sent what it does not know.
//
// # Errors
//
// Application error codes are [ErrorCode] values, themselves errors:
// errors.Is(err, transport.CodeOverloaded) works on every error this package
// returns. A connection ended by an application close reports a [*ConnError],
// a reset channel a [*ChannelError], an oversized Send a
// [*MessageTooLargeError], a failed Dial a [*DialError], a failed
// migration a [*MigrationError].
package transport
