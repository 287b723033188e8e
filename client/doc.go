// Package client is the client side of quicmsg: a [Client] that reconnects
// by itself, with exponential backoff and full jitter, and whose channels
// survive reconnects; 0-RTT resumption so that a returning client's first
// message rides the very first flight; and a [Pool] of connections.
//
// # Delivery across reconnects
//
// A message accepted by [Channel.Send] is delivered exactly once and in
// order per channel, in both directions, across every connection loss that
// the session survives; otherwise its fate is reported. While disconnected,
// Send waits in a bounded reconnect buffer (Config.ReconnectBufferSize,
// 8 MiB by default) and TrySend fails with [ErrBufferFull] when it is full.
//
// Resumption (on by default; Config.DisableResume turns it off): with a
// server that acknowledges messages, each side keeps what it wrote until
// the other acknowledges it, and the server keeps a session whose
// connection was lost (a partition longer than the idle timeout, a NAT
// rebinding QUIC could not follow, a GOAWAY after which the client comes
// back to the same server) for its resume window. The client then resumes
// the session on its next connection: both sides say how many messages
// they received on each channel, and each sends again, before anything
// new, exactly what the other did not receive. Nothing is in doubt, the
// [EventReconnected] event has Resumed set, Stats.Resumes counts it and
// Stats.MessagesResent the messages sent again.
//
// Limits. If the server refuses the resume (its window passed, it
// restarted, the token is not valid, or one side's resume state is
// impossible), the messages written and not acknowledged may or may not
// have been delivered: they are listed in a [ResumeFailedError], delivered
// as an [EventResumeFailed] event, counted in Stats.MessagesUnacked and
// Stats.MessagesInDoubt, and not sent again; what was never written, and
// the reconnect buffer, go out on the new session the client opens at
// once. What the server had sent and the client had not received is lost
// with the old session (a session.Server reports it). Without resumption
// (disabled, a server that does not acknowledge messages, or one that
// resumes no sessions and so issues no resume token), messages
// written to a connection that died are in doubt (Stats.MessagesInDoubt)
// and what the server sent on it and was not received is lost; what the
// connection never wrote, and 0-RTT data the server rejected, is sent
// again (Stats.MessagesResent). [Client.Shutdown] and [Client.Close] end
// the session: messages still in the reconnect buffer are reported in an
// [UndeliveredError] (Stats.MessagesFailed), and those written without the
// server's confirmation are in doubt.
//
// Session counts are kept per [Channel]: a channel closed with
// [Channel.Close] and opened again by name starts anew. A resume dials
// with a full handshake, not 0-RTT: what is sent again must go before
// anything new. A [Pool] does not resume: its connections are handed out
// as they are, and a replaced connection is a new session.
//
// # Subjects, headers and gap notices
//
// [Channel.SendMsg] and [Channel.ReceiveMsg] carry a message's subject and
// headers (transport.Message); the reconnect buffer and a resume keep
// them, and a message is written again as it was sent. A gap notice from
// the server (the relay skipped messages for a slow consumer) makes
// Receive return a *transport.GapError at its place, never a message, and
// counts like a message for the resume. [Client.ChannelWith] opens a
// channel with options (a queue group) on every connection.
//
// # 0-RTT
//
// The client keeps TLS session tickets and reconnects with QUIC 0-RTT.
// Only messages sent with [Channel.SendReplaySafe] (idempotent ones) travel
// before the handshake completes; plain Send waits for it. If the server
// rejects the early data, it is sent again after the handshake, once.
// Servers keep 0-RTT working across restarts by keeping their session
// ticket keys (certs.LoadOrCreateSessionKeys; quicsrv -ticket-keys).
package client
