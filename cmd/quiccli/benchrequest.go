package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// modeRequest is bench -mode request: request/reply round trips, with
// -conns requesting connections keeping -inflight requests in flight each,
// and one responder connection.
const modeRequest = "request"

// connectRequests dials the requesting connections and the responder's,
// subscribes the responder to the request subject and starts it.
func (b *bench) connectRequests(ctx context.Context, conf *tls.Config) error {
	if err := b.dialAll(ctx, conf, b.o.conns+1); err != nil {
		return err
	}
	b.subject = fmt.Sprintf("quiccli-bench.%08x.request", rand.Uint32())
	octx, cancel := context.WithTimeout(ctx, b.g.timeout)
	defer cancel()
	ch, err := b.conns[b.o.conns].OpenChannel(octx, b.subject)
	if err != nil {
		return b.g.describe(err)
	}
	b.readers.Go(func() { b.respond(ch) })
	for i := range b.o.conns {
		for range b.o.inflight {
			b.streams = append(b.streams, &benchStream{conn: b.conns[i]})
		}
	}
	return nil
}

// respond answers every request arriving on ch with its payload, until the
// connection is closed.
func (b *bench) respond(ch *transport.Channel) {
	for {
		// No context: the responder ends when its connection is closed.
		req, err := ch.ReceiveMsg(context.Background())
		if errors.Is(err, transport.ErrGap) {
			b.fail(err) // requests the server could not deliver
			continue
		}
		if err == nil {
			b.answered.Add(1)
			err = ch.Reply(context.Background(), req, &transport.Message{Data: req.Data})
		}
		if err != nil {
			if !b.stopping.Load() {
				b.fail(err)
			}
			return
		}
	}
}

// syncRequests sends a test request from every requesting connection until
// it is answered, so that the server knows the responder's subscription and
// every inbox before the run, and returns who answered: serverRelays
// (bench's responder, through a relay) or serverEchoes (the server itself).
func (b *bench) syncRequests(ctx context.Context) (string, error) {
	msg := make([]byte, benchHeader)
	msg[0] = kindSync
	deadline := time.Now().Add(b.g.timeout)
	for i := range b.o.conns {
		for {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			_, err := b.conns[i].Request(rctx, b.subject, &transport.Message{Data: msg})
			expired := rctx.Err() != nil
			cancel()
			if err == nil {
				break
			}
			switch {
			case ctx.Err() != nil:
				return "", interrupted(ctx.Err(), "before the run started")
			case expired || (errors.Is(err, transport.ErrNoResponders) && time.Now().After(deadline)):
				return "", explain(exitError, err, "no reply to a test request on %q within %s; is the server a quicsrv in relay or echo mode?", b.subject, b.g.timeout)
			case !errors.Is(err, transport.ErrNoResponders):
				return "", b.g.describe(err)
			}
			// The relay does not know the responder's subscription yet.
			time.Sleep(syncEvery)
		}
	}
	if b.answered.Load() > 0 {
		return serverRelays, nil
	}
	return serverEchoes, nil
}

// requestLoop sends one request at a time for s and records each round
// trip, until ctx ends or the -count budget is spent; replies are awaited
// until ectx ends.
func (b *bench) requestLoop(ctx, ectx context.Context, s *benchStream, interval time.Duration) error {
	var reply *transport.Message
	var rerr error
	send := func(msg []byte) error {
		reply, rerr = s.conn.Request(ectx, b.subject, &transport.Message{Data: msg})
		return nil
	}
	return b.sendLoop(ctx, s, interval, send, func() (bool, error) {
		switch {
		case rerr != nil && ectx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
			return true, nil // interrupted
		case rerr != nil && ectx.Err() != nil:
			return true, fmt.Errorf("no reply within %s (-timeout) after the run", b.g.timeout)
		case rerr != nil:
			return true, rerr
		}
		b.count(s, &s.echoes, reply.Data, echoed)
		return false, nil
	})
}
