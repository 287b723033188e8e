// Package relay is the publish/subscribe core of quicsrv: a message that one
// peer publishes on a channel goes to every other peer subscribed to that
// channel. In quicsrv a peer is a session, and a session is subscribed to a
// channel while it has that channel open.
//
// A slow subscriber never slows the publisher or the other subscribers.
// Publish only appends to each subscriber's bounded outbound queue
// (Config.QueueSize messages, Config.QueueBytes bytes) and never waits; one
// goroutine per subscriber drains the queue into [Peer.Send]. It is started
// when a message is queued and exits when the queue is empty, so that idle
// subscribers hold no goroutine; [Relay.Remove] and [Relay.Close] stop it
// and wait for it. When a queue is full the
// relay applies Config.SlowConsumer: [Drop] discards the message for that
// subscriber alone and counts it, [Disconnect] closes the subscriber with
// transport.CodeSlowConsumer.
//
// Every copy of a message addressed to a subscriber ends in exactly one of
// the counters of [Stats]: Delivered, Dropped or Failed, or is still Queued.
package relay
