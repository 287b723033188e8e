// Package transport is the quicmsg wire: QUIC connections with mandatory TLS
// 1.3, one QUIC stream per named message channel, length-prefixed message
// frames, flow signals (slow down, resume, go away) and typed errors. The
// protocol is specified in PROTOCOL.md at the root of the module.
//
// A server calls [Listen] and [Listener.Accept]; a client calls [Dial]. Both
// get a [*Conn], on which either side opens channels with [Conn.OpenChannel]
// and accepts the peer's with [Conn.AcceptChannel]. A [*Channel] carries
// messages in order in both directions, independently of other channels:
// a lost packet on one channel does not hold up the others.
//
// # Sending
//
// [Channel.Send] copies the message into the channel's bounded send buffer
// and returns; the channel's writer coalesces buffered messages into large
// stream writes under load and writes a lone message at once. Send waits
// while the buffer is full or the peer has signalled slow-down;
// [Channel.TrySend] fails with [ErrWouldBlock] or [ErrSlowDown] instead.
// [Channel.Flush] waits until accepted messages are written.
//
// # Delivery
//
// Within a live connection, QUIC delivers what was written reliably and in
// order per channel. [Conn.Close] and [Channel.Close] are graceful: they
// write everything Send accepted and, for Conn.Close, wait until the peer has
// read it and closed too (bounded by Config.CloseTimeout). If a connection
// dies, messages accepted but not yet acknowledged by the peer application
// are in doubt; [Conn.Stats] counts messages accepted and written.
//
// # Errors
//
// Application error codes are [ErrorCode] values, themselves errors:
// errors.Is(err, transport.CodeOverloaded) works on every error this package
// returns. A connection ended by an application close reports a [*ConnError],
// a reset channel a [*ChannelError], an oversized Send a
// [*MessageTooLargeError], a failed Dial a [*DialError].
package transport
