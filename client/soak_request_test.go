//go:build soak

package client

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// TestSoakRequestReply makes 100,000 requests through one client to a
// session server that replies peer to peer, with 1 and with 64 in flight
// (the second bounded to 30 s), and checks that every reply reached its
// own request and none was left unmatched.
func TestSoakRequestReply(t *testing.T) {
	_, addr := startTestServer(t, nil, replyHandler)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	defer c.Close()

	for _, inflight := range []int{1, 64} {
		const total = 100_000
		var next, answered atomic.Int64
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		var g errgroup.Group
		for range inflight {
			g.Go(func() error {
				for dctx.Err() == nil {
					i := next.Add(1)
					if i > total {
						return nil
					}
					data := strconv.FormatInt(i, 10)
					reply, err := c.Request(dctx, "svc.echo", &transport.Message{Data: []byte(data)})
					if err != nil {
						if dctx.Err() != nil {
							return nil
						}
						return err
					}
					if string(reply.Data) != "re: "+data {
						return fmt.Errorf("request %s got reply %q", data, reply.Data)
					}
					answered.Add(1)
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
		elapsed := time.Since(start)
		cancel()
		done := answered.Load()
		testenv.Figure(t, fmt.Sprintf("round trips/s, %d in flight", inflight), "%.0f (%d in %s)", float64(done)/elapsed.Seconds(), done, elapsed.Round(time.Millisecond))
	}
	require.Zero(t, c.UnmatchedReplies())
}
