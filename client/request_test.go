package client

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// replyHandler answers every request with "re: " and its data, with
// Session.Reply: peer to peer, on the requester's inbox channel.
var replyHandler = session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
	_ = s.Reply(ctx, m, &transport.Message{Data: append([]byte("re: "), m.Data...)})
})

func TestRequestToASessionServerThatReplies(t *testing.T) {
	_, addr := startTestServer(t, nil, replyHandler)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	defer c.Close()

	reply, err := c.Request(ctx, "svc.time", &transport.Message{Data: []byte("now?")})
	require.NoError(t, err)
	require.Equal(t, "re: now?", string(reply.Data))
	require.Equal(t, "1", reply.Header.Get(transport.HeaderInReplyTo))
	require.Regexp(t, `^_INBOX\.[0-9A-Za-z]{22}$`, reply.Subject)
	require.Zero(t, c.UnmatchedReplies())
}

func TestSixtyFourClientRequestsInFlight(t *testing.T) {
	_, addr := startTestServer(t, nil, replyHandler)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	defer c.Close()

	const n = 64
	start := time.Now()
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			data := strconv.Itoa(i)
			reply, err := c.Request(ctx, "svc.echo", &transport.Message{Data: []byte(data)})
			if err != nil {
				return err
			}
			if string(reply.Data) != "re: "+data {
				return fmt.Errorf("request %s got reply %q", data, reply.Data)
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	t.Logf("%d requests in flight on one client in %s", n, time.Since(start))
	require.Zero(t, c.UnmatchedReplies())
}

func TestClientRequestEndsWithItsContextAndALateReplyIsCounted(t *testing.T) {
	reqs := make(chan session.Message, 1)
	var sess *session.Session
	_, addr := startTestServer(t, nil, session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		sess = s
		reqs <- m
	}))
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	defer c.Close()

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(rctx, "svc.slow", &transport.Message{Data: []byte("slow")})
		done <- err
	}()
	req := <-reqs
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, sess.Reply(ctx, req, &transport.Message{Data: []byte("too late")}))
	require.Eventually(t, func() bool { return c.UnmatchedReplies() == 1 }, 10*time.Second, time.Millisecond)
}

func TestClientRequestWaitsForItsReplyAcrossAReconnect(t *testing.T) {
	log := &eventLog{}
	reqs := make(chan session.Message, 1)
	sessions := make(chan *session.Session, 1)
	srv := startResumingServer(t, "127.0.0.1:0", &session.Config{CloseTimeout: time.Second}, session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		sessions <- s
		reqs <- m
	}))
	proxy, err := udpproxy.New(srv.addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	ctx := testCtx(t)
	c, err := Dial(ctx, proxy.Addr().String(), testClientTLS(t), fastConfig(t, log))
	require.NoError(t, err)
	defer c.Close()

	done := make(chan error, 1)
	var reply *transport.Message
	go func() {
		var err error
		reply, err = c.Request(ctx, "svc.slow", &transport.Message{Data: []byte("across")})
		done <- err
	}()
	req, sess := <-reqs, <-sessions
	proxy.SetBlackHole(true) // the idle timeout is 1 s
	waitStatus(t, c, StatusReconnecting)
	// The session is detached: its reply waits for the resume.
	replied := make(chan error, 1)
	go func() { replied <- sess.Reply(ctx, req, &transport.Message{Data: []byte("re: across")}) }()
	proxy.SetBlackHole(false)
	require.NoError(t, <-replied)
	require.NoError(t, <-done)
	require.Equal(t, "re: across", string(reply.Data))
	require.GreaterOrEqual(t, c.Stats().Resumes, uint64(1))
}

func TestClientReplyNeedsAReplyTo(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "plain")
	require.NoError(t, err)
	require.ErrorIs(t, ch.Reply(ctx, &transport.Message{Data: []byte("x")}, &transport.Message{}), transport.ErrNoReplyTo)
}
