// Package session is the server side of quicmsg. A [Server] serves a
// [transport.Listener]: every accepted connection becomes a [Session], tracked
// while the connection lives and removed as soon as the connection's context
// ends, whatever ended it (clean close, error, idle timeout, a client that
// vanished without a word). There is no sweeper: removal is driven by the
// connection itself. A session whose client can resume it is detached
// instead, and waits for it for a while (see "Resumable sessions").
//
// Messages from a session's channels go to a [Handler], one at a time per
// session, in arrival order per channel. Between the network and the handler
// sits a bounded pending queue: Config.PendingCap messages (default 1000)
// and Config.PendingBytes bytes of payload (default 8 MiB), both advertised
// to the client in HELLO. At whichever is reached first the session signals
// slow-down to its client; under [OverflowBlock] it also stops reading until
// the queue is below both again, so that QUIC flow control stops the
// sender, and signals resume below half of both. Under [OverflowDisconnect] it keeps reading and disconnects, with
// transport.CodeOverloaded, a client that sends more after SLOW_DOWN than a
// conforming one could have had under way (PROTOCOL.md, "Overload").
// Either way no message the handler was given is lost or reordered.
//
// A server-wide budget, Config.ServerPendingBytes, caps the pending bytes of
// all sessions together: from half of it the server stops reading from the
// sessions holding more than their fair share, at all of it from every
// session holding anything; a session with an empty queue still reads one
// message at a time, so sessions whose handler keeps up go on working.
//
// # Memory bound
//
// With M the largest message (transport.Config.MaxMessageSize), W the
// connection receive window (transport.Config.MaxConnectionReceiveWindow)
// and C the channels of a session that are receiving at once, a session
// holds at most
//
//	PendingBytes + C×M              pending messages (a reader stopped at
//	                                the budget finishes the message it was
//	                                receiving, and holds nothing more)
//	+ W                             received by QUIC, not yet read
//	+ channels × SendBufferSize     the server's own send buffers
//
// under OverflowBlock. Under OverflowDisconnect the pending part may grow by
// the allowance A = 2W + channels × 2 × max(S, M + 10) before the client is
// shed, and no further (the session then stops reading), where S is the
// client's send buffer counted up to max(transport.MaxAdvertisedSendBuffer
// (1 MiB), the server's own SendBufferSize): a client cannot raise A by
// advertising a larger one. A server holds at most
//
//	min(ServerPendingBytes + sessions×C×M, Σ sessions' pending parts)
//	+ sessions × (W + channels × SendBufferSize)
//
// With the defaults (M 1 MiB, W 8 MiB, PendingBytes 8 MiB) a session
// flooding 1 MiB messages on one channel holds at most 17 MiB under
// OverflowBlock. Under OverflowDisconnect A grows with the channels the
// client keeps open: about 2 × 8 MiB + 2 × (1 MiB + 10) = 18 MiB with one,
// about 2 × 8 MiB + 100 × 2 × max(1 MiB, 1 MiB + 10) = 216 MiB with 100
// (the default transport.Config.MaxChannels), so such a client may hold
// PendingBytes + A + C×M + W, up to about 330 MiB, before it is shed;
// ServerPendingBytes bounds all sessions together either way. The server's
// default budget is a quarter of GOMEMLIMIT when one is set, else an eighth
// of physical memory (see [DefaultServerPendingBytes]).
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
// # Resumable sessions
//
// When both sides acknowledge messages (transport.Config.DisableAcks unset
// on both, as by default) and the server serves a listener that
// [Server.Listen] made, a session outlives a lost connection. Its
// connection may end in a way the client can come back from (anything but
// the server's own close: [Session.Disconnect], CloseWithError, OVERLOADED,
// Shutdown; and but a close the client makes with NO_ERROR, unless the
// server had asked it to leave with [Session.SendGoAway]); the session is
// then detached: out of the live table, into the detached one, for
// Config.ResumeWindow (default 30 s; negative turns this off). The client
// presents the resume token the server issued (transport.Config.Resume);
// the server's OnResume refuses it as transport.ErrResumeExpired if the
// session is gone, ErrResumeTokenReplayed for an older token, and
// ErrSessionAttached while the session still has a live connection or a
// resume is under way (the client retries). A resumed connection joins
// the same [Session] (Config.OnSessionDetached and OnSessionResumed say
// so); the handler never notices but through [Session.Conn], which is nil
// while the session is detached: the session lets the lost connection go,
// so that a detached session holds little more than its messages.
//
// On resume each side says what it received per channel over the session
// (the resume state). The server checks the client's claim on each of its
// channels: at least what the client acknowledged, at most that plus what
// was written unacknowledged; a claim outside is refused with
// transport.ErrResumeClaim and ends the session. As the client reopens
// each channel, the server writes, in order and before anything new, what
// the client had not received, what was never written, and what Send
// accepted while the session was detached: every message Send accepted is
// delivered once, in order, or reported. Messages sent with
// [Session.SendMsg] keep their subject and headers, and gap notices sent
// with [Session.SendGap] stay gap notices, counted like messages; what
// the client's last connection would refuse (headers without the HEADERS
// extension, a wildcard subject) is refused at once. A message counts as
// received once the session's reader has taken it into the pending queue,
// which the detachment keeps: the handler sees it once.
//
// Bounds, each with its overflow policy: Config.MaxDetachedSessions
// detached sessions (one more ends the oldest), Config.MaxDetachedBytes of
// their unacknowledged messages together (over it the oldest end; a session
// that alone holds more is not detached), and Config.MaxDetachedSendBytes
// of what Send adds per session while it cannot write (Send waits, TrySend
// fails with transport.ErrWouldBlock). Channels the server opened
// ([Session.Open]) are not carried to the next connection (client.Client
// does not accept channels); what the client did not acknowledge on them
// is reported. A session that ends with messages the client never
// acknowledged reports them in an [*UnackedError], per channel, as
// Config.OnSessionEnd's cause. Detached sessions live in memory: they do
// not survive a restart of the server.
//
// [Server.Shutdown] sends GOAWAY to every session, and to connections that
// arrive while those sessions leave (they are admitted and drained too); once
// the first sessions have left it refuses new connections (before their
// HELLO is answered: their Dial fails) and admits, with GOAWAY, those whose
// HELLO the listener had answered, so that every client whose Dial
// returned is told to go away; and it lets
// clients leave and the handler drain until its context ends. The
// exceptions: transport.DialEarly (0-RTT) returns before the server's
// HELLO, so its connection may be refused with GOING_AWAY after it
// returned; a connection that would take the server over
// Config.MaxSessions is closed with TOO_MANY_SESSIONS, during the drain
// as at any time; one the listener answered when its accept queue was
// full is closed with GOING_AWAY (transport.Config.AcceptBacklog); and a
// Shutdown whose context has ended closes those it would have admitted
// with GOING_AWAY. Serve returns ErrServerClosed once it stops accepting,
// before the late sessions have left: wait for Shutdown to return, as
// with net/http.
// [Server.Close] is Shutdown bounded by Config.CloseTimeout. Both end the
// detached sessions at once and return once every session's goroutine has
// ended: a session owns the readers of
// its channels and its worker, and ends (Config.OnSessionEnd) only after
// the last message it read has been handled.
package session
