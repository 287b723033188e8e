// Package relay is the publish/subscribe core of quicsrv: a message that one
// peer publishes to a subject goes to every other peer with a subscription
// that matches it. In quicsrv a peer is a session, and a session is
// subscribed by each channel it has open: the channel's name is the subject
// or the pattern ("*" matches one token, ">" one or more trailing tokens,
// as in NATS), and its queue group comes from the channel's options.
//
// Matching: exact subjects are looked up in a map, wildcard patterns in a
// token trie, whose results are kept in a bounded cache that every
// subscription change invalidates (a generation counter). Subscriptions of
// one pattern in the same queue group share its messages: each goes to one
// member, round robin, skipping members whose queue is full while another
// has room.
//
// Publish appends a copy to each matching subscriber's bounded outbound
// queue (Config.QueueSize messages, Config.QueueBytes bytes); one goroutine
// per subscriber drains the queue into [Peer.SendMsgs], handing over the
// consecutive messages of a channel that are waiting (up to maxBatch) in
// one call, under one lock of the queue. It is started when
// something is queued and exits when the queue is empty, so that idle
// subscribers hold no goroutine; [Relay.Remove] and [Relay.Close] stop it
// and wait for it. A copy is a transport.Message held by value in the
// queue, sharing the published payload: routing and delivering a copy
// allocates nothing. When a queue is full the relay applies
// Config.SlowConsumer:
//
//   - [Drop] (the default) discards the copy for that subscriber alone, and
//     counts it in a gap item at that place in the queue, one open gap per
//     channel: the subscriber receives a gap notice (transport.GapSlowConsumer)
//     with the exact number missed, in order. Gap items do not count against
//     QueueSize and never outnumber the queued messages plus the
//     subscriber's channels. Publishers and other subscribers never wait.
//   - [Disconnect] discards the queue, sends each channel that lost messages
//     a gap notice (transport.GapDisconnect) and closes the subscriber
//     gracefully with transport.CodeSlowConsumer, within DisconnectTimeout.
//   - [Block] makes Publish wait, outside the relay's lock, for room, up to
//     Config.PublishTimeout; then that subscriber alone is disconnected as
//     under Disconnect.
//
// Every copy of a message addressed to a subscriber ends in exactly one of
// the counters of [Stats]: Delivered, Dropped or Failed, or is still Queued.
//
// Config.Backplane links relays on several nodes (quicsrv's cluster mode):
// the relay reports the first and last local subscription of each
// (pattern, group), forwards what is published locally, and takes
// messages from other nodes through [Relay.DeliverRemote]; queue groups
// are then picked cluster-wide. See [Backplane].
package relay
