package session

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

func messagesOf(data []string) []transport.Message {
	ms := make([]transport.Message, len(data))
	for i, d := range data {
		ms[i] = transport.Message{Data: []byte(d)}
	}
	return ms
}

// SendMsgs delivers a batch in order on a live channel, keeps one sent
// while the session is detached for the next connection, after what the
// client had not received, and fails on a channel the session does not
// have, as SendMsg does.
func TestSendMsgsKeepsOrderAttachedAndAcrossADetach(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, ch, sess := openNews(ctx, t, addr, nil, rec)

	n, err := sess.SendMsgs(ctx, "news", messagesOf(numbered("m", 0, 10)))
	require.NoError(t, err)
	require.Equal(t, 10, n)
	receiveAll(ctx, t, rc, ch, numbered("m", 0, 6)) // m-6.. are read by nobody
	rc.kill()
	hooks.wait(t, "detached", 1)
	n, err = sess.SendMsgs(ctx, "news", messagesOf(numbered("m", 10, 15))) // kept while detached
	require.NoError(t, err)
	require.Equal(t, 5, n)

	_, err = rc.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 1)
	ch, err = rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	n, err = sess.SendMsgs(ctx, "news", messagesOf(numbered("m", 15, 20)))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	receiveAll(ctx, t, rc, ch, numbered("m", 6, 20))

	n, err = sess.SendMsgs(ctx, "nobody", messagesOf([]string{"x"}))
	require.ErrorIs(t, err, ErrChannelClosed)
	require.Zero(t, n)
}
