package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// modeRequest is bench -mode request: request/reply round trips.
const modeRequest = "request"

// runRequests is run for -mode request: -conns requesting connections with
// -inflight requests in flight each, and one responder connection.
func (b *bench) runRequests(ctx context.Context, conf *tls.Config) (*benchResult, error) {
	if err := b.connectRequests(ctx, conf); err != nil {
		b.close()
		return nil, err
	}
	serverMode, err := b.syncRequests(ctx)
	if err != nil {
		b.close()
		return nil, err
	}
	sendStart := b.now()
	endedBy := b.sendRequests(ctx)
	b.close()
	return b.result(serverMode, endedBy, sendStart), nil
}

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
			s := &benchStream{conn: b.conns[i]}
			b.streams = append(b.streams, s)
			b.tallies = append(b.tallies, &s.echoes)
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

// sendRequests runs the requesters until -duration, -count or ctx ends, and
// says which ended the run. A request in flight when the run ends is still
// awaited, up to -timeout.
func (b *bench) sendRequests(ctx context.Context) string {
	rctx, cancel := context.WithTimeout(ctx, b.o.duration)
	defer cancel()
	ectx, ecancel := context.WithTimeout(ctx, b.o.duration+b.g.timeout)
	defer ecancel()
	if b.o.count > 0 {
		b.remaining.Store(b.o.count)
	}
	var interval time.Duration
	if b.o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(b.streams)) / b.o.rate)
	}
	stop := b.startProgress()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, s := range b.streams {
		wg.Go(func() {
			if err := b.requestLoop(rctx, ectx, s, interval); err != nil {
				failed.Add(1)
				b.fail(err)
			}
		})
	}
	wg.Wait()
	stop()
	return b.endedBy(ctx, failed.Load())
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
