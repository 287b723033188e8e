package transport

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/reqrep"
)

// responder is called for every message a responder receives, on the
// channel's reader goroutine.
type responder func(ctx context.Context, ch *Channel, req *Message) error

// answer runs handle for every message on every channel the peer opens on
// server, until the test ends; then it waits for its goroutines.
func answer(t *testing.T, server *Conn, handle responder) context.Context {
	ctx, cancel := context.WithCancel(testCtx(t))
	var g errgroup.Group
	g.Go(func() error {
		for {
			ch, err := server.AcceptChannel(ctx)
			if err != nil {
				return nil
			}
			g.Go(func() error {
				for {
					req, err := ch.ReceiveMsg(ctx)
					if err != nil {
						return nil
					}
					if err := handle(ctx, ch, req); err != nil && ctx.Err() == nil {
						return err
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		require.NoError(t, g.Wait())
	})
	return ctx
}

// prefixReply answers each request with "re: " and its data.
func prefixReply(ctx context.Context, ch *Channel, req *Message) error {
	return ch.Reply(ctx, req, &Message{Data: append([]byte("re: "), req.Data...)})
}

func TestRequestGetsTheReplyOfAPeerThatRepliesOnTheInbox(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	seen := make(chan *Message, 1)
	ctx := answer(t, server, func(ctx context.Context, ch *Channel, req *Message) error {
		seen <- req
		return ch.Reply(ctx, req, &Message{Header: Header{{Key: "x-served-by", Value: "test"}}, Data: append([]byte("re: "), req.Data...)})
	})

	in := &Message{Header: Header{{Key: "x-trace", Value: "abc"}}, Data: []byte("time?")}
	reply, err := client.Request(ctx, "svc.time", in)
	require.NoError(t, err)
	require.Equal(t, "re: time?", string(reply.Data))
	require.Equal(t, "test", reply.Header.Get("x-served-by"))
	require.Equal(t, Header{{Key: "x-trace", Value: "abc"}}, in.Header, "Request does not modify its message")

	req := <-seen
	require.Equal(t, "svc.time", req.Subject)
	require.Equal(t, "abc", req.Header.Get("x-trace"))
	require.Equal(t, "1", req.ID())
	inbox := req.ReplyTo()
	require.Regexp(t, `^_INBOX\.[0-9A-Za-z]{22}$`, inbox)
	require.Equal(t, inbox, reply.Subject, "the reply travels on the inbox channel")
	require.Equal(t, req.ID(), reply.Header.Get(HeaderInReplyTo))
	require.Zero(t, client.UnmatchedReplies())
}

func TestSixtyFourRequestsInFlightOnOneConnection(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	const n = 64
	// The responder holds every request until all 64 are in, then answers
	// them in reverse order: each reply must still reach its own request.
	var held []*Message
	ctx := answer(t, server, func(ctx context.Context, ch *Channel, req *Message) error {
		held = append(held, req)
		if len(held) < n {
			return nil
		}
		for i := len(held) - 1; i >= 0; i-- {
			if err := prefixReply(ctx, ch, held[i]); err != nil {
				return err
			}
		}
		return nil
	})
	start := time.Now()
	var reqs errgroup.Group
	for i := range n {
		reqs.Go(func() error {
			data := strconv.Itoa(i)
			reply, err := client.Request(ctx, "svc.echo", &Message{Data: []byte(data)})
			if err != nil {
				return err
			}
			if string(reply.Data) != "re: "+data {
				return fmt.Errorf("request %s got reply %q", data, reply.Data)
			}
			return nil
		})
	}
	require.NoError(t, reqs.Wait())
	t.Logf("%d requests in flight, answered in reverse order, in %s", n, time.Since(start))
	require.Zero(t, client.UnmatchedReplies())
}

func TestRequestEndsWithItsContextAndALateReplyIsCounted(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	late := make(chan struct{})
	ctx := answer(t, server, func(ctx context.Context, ch *Channel, req *Message) error {
		if string(req.Data) == "slow" {
			select {
			case <-late: // the request gave up
			case <-ctx.Done():
				return nil
			}
		}
		return prefixReply(ctx, ch, req)
	})

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := client.Request(rctx, "svc.slow", &Message{Data: []byte("slow")})
		done <- err
	}()
	require.Eventually(t, func() bool {
		_ = client.req.mu.Lock(ctx)
		defer client.req.mu.Unlock()
		return client.req.rq != nil && client.req.rq.InFlight() == 1
	}, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	close(late)

	// The late reply is discarded; the next request is answered.
	reply, err := client.Request(ctx, "svc.fast", &Message{Data: []byte("fast")})
	require.NoError(t, err)
	require.Equal(t, "re: fast", string(reply.Data))
	require.Equal(t, uint64(1), client.UnmatchedReplies())
}

func TestRequestFailsFastWithNoRespondersOnStatus503(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	require.Equal(t, reqrep.StatusNoResponders, StatusNoResponders)
	ctx := answer(t, server, func(ctx context.Context, ch *Channel, req *Message) error {
		// What a relay sends when nothing subscribes to the subject.
		return ch.SendMsg(ctx, &Message{Subject: req.ReplyTo(), Header: Header{
			{Key: HeaderStatus, Value: StatusNoResponders},
			{Key: HeaderInReplyTo, Value: req.ID()},
		}})
	})
	_, err := client.Request(ctx, "nobody.home", &Message{Data: []byte("?")})
	require.ErrorIs(t, err, ErrNoResponders)
}

func TestRequestFailsWhenTheConnectionEnds(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	got := make(chan struct{})
	ctx := answer(t, server, func(ctx context.Context, ch *Channel, req *Message) error {
		close(got)
		return nil // never answers
	})
	done := make(chan error, 1)
	go func() {
		_, err := client.Request(ctx, "svc.gone", nil)
		done <- err
	}()
	<-got
	require.NoError(t, server.CloseWithError(CodeGoingAway, "bye"))
	err := <-done
	require.ErrorIs(t, err, CodeGoingAway)
	_, err = client.Request(ctx, "svc.gone", nil)
	require.Error(t, err)
}

func TestRequestRefusesAWildcardSubject(t *testing.T) {
	client, _, _ := pair(t, nil, nil)
	_, err := client.Request(testCtx(t), "svc.*", nil)
	require.ErrorIs(t, err, ErrWildcardSubject)
}

func TestReplyNeedsAReplyTo(t *testing.T) {
	client, _, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "plain")
	require.NoError(t, err)
	err = ch.Reply(ctx, &Message{Data: []byte("not a request")}, &Message{})
	require.ErrorIs(t, err, ErrNoReplyTo)
}
