// Package client is the client side of quicmsg: a [Client] that reconnects
// by itself, with exponential backoff and full jitter, and whose channels
// survive reconnects; 0-RTT resumption so that a returning client's first
// message rides the very first flight; and a [Pool] of connections.
//
// # Delivery across reconnects
//
// A message accepted by [Channel.Send] either reaches a connection, once and
// in order per channel, or its loss is reported: [Client.Shutdown] and
// [Client.Close] return an [UndeliveredError] for messages still waiting in
// the reconnect buffer, and Stats.MessagesFailed counts them. While disconnected, Send waits in a
// bounded reconnect buffer (Config.ReconnectBufferSize, 8 MiB by default) and
// TrySend fails with [ErrBufferFull] when it is full.
//
// Messages that a connection had accepted but not written when it died, and
// 0-RTT data the server rejected, are certainly undelivered: they are sent
// again on the next connection (Stats.MessagesResent). Messages already
// written to a connection that died are in doubt: they may or may not have
// been delivered (Stats.MessagesInDoubt). The protocol reserves sequence
// numbers and acknowledgements to settle them in a later version; until then
// the guarantee for them is at most once.
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
