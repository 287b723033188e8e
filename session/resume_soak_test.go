//go:build soak

package session

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// 500 clients each open a channel, are sent one message they do not read,
// and vanish; the server keeps their sessions detached. The heap growth of
// this process per detached session (its goroutine, its lost connection,
// the held message) is the figure; then 100 of them are resumed, each
// timed from the start of its Dial to the re-sent message's arrival.
func TestSoakDetachedSessionMemoryAndResumeTime(t *testing.T) {
	const sessions, resumed = 500, 100
	var hooks hookLog
	var rec sessionRecorder
	srv, addr := startServer(t, hooks.config(&Config{ResumeWindow: time.Hour}), &rec)
	ctx := testCtx(t)
	before := heapAlloc()
	clients := make([]*resumeClient, sessions)
	for i := range clients {
		// Dialled without dial's cleanup, so that nothing keeps the
		// killed connection: the growth is the server's.
		c, err := transport.Dial(ctx, addr, testTLS(t).client, nil)
		require.NoError(t, err)
		rc := &resumeClient{t: t, addr: addr, conn: c, received: make(map[string]uint64)}
		rc.tok, _ = c.ResumeToken()
		ch, err := c.OpenChannel(ctx, "news")
		require.NoError(t, err)
		require.NoError(t, ch.Send(ctx, []byte("hello")))
		rec.waitSeen(t, i+1)
		sess, ok := rec.byID(c.SessionID())
		require.True(t, ok)
		require.NoError(t, sess.Send(ctx, "news", make([]byte, 64)))
		rc.kill()
		rc.conn = nil
		clients[i] = rc
	}
	hooks.wait(t, "detached", sessions)
	require.Equal(t, sessions, srv.Stats().DetachedSessions)
	after := heapAlloc()
	testenv.Figure(t, "heap growth per detached session (server side)", "%d B", (after-before)/sessions)
	testenv.Figure(t, "detached bytes held", "%d B", srv.Stats().DetachedBytes)

	var took []time.Duration
	for _, rc := range clients[:resumed] {
		start := time.Now()
		_, err := rc.resume(ctx, nil)
		require.NoError(t, err)
		ch, err := rc.conn.OpenChannel(ctx, "news")
		require.NoError(t, err)
		require.Len(t, rc.receive(ctx, ch), 64)
		took = append(took, time.Since(start))
		require.NoError(t, rc.conn.CloseWithError(transport.CodeNoError, ""))
	}
	slices.Sort(took)
	testenv.Figure(t, "resume to first re-sent message, p50", "%v", took[len(took)/2])
	testenv.Figure(t, "resume to first re-sent message, max", "%v", took[len(took)-1])
	require.Equal(t, uint64(resumed), srv.Stats().SessionsResumed)
}
