package transport

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// SendMsgs sends a batch in order, plain messages and messages with
// headers alike, more than one send buffer's worth (so that it waits for
// room as SendMsg does); a message the peer's limit refuses stops it there
// with SendMsg's error, the ones before it accepted, and the channel goes
// on.
func TestSendMsgsSendsInOrderAndStopsAtARefusedMessage(t *testing.T) {
	client, server, _ := pair(t, &Config{MaxMessageSize: 4096}, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "orders")

	var batch []Message
	for i := range 600 {
		m := Message{Subject: "orders", Data: bytes.Repeat([]byte{byte(i)}, 1000)}
		if i%3 == 0 {
			m.Subject, m.Header = fmt.Sprintf("orders.%d", i), Header{{"n", fmt.Sprint(i)}}
		}
		batch = append(batch, m)
	}
	// The receiver reads meanwhile: the batch is more than QUIC's
	// initial stream window, which grows only as the receiver reads.
	type result struct {
		msgs []*Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for range batch {
			m, err := srv.ReceiveMsg(ctx)
			if err != nil {
				r.err = err
				break
			}
			r.msgs = append(r.msgs, m)
		}
		done <- r
	}()
	n, err := cli.SendMsgs(ctx, batch)
	require.NoError(t, err)
	require.Equal(t, len(batch), n)
	r := <-done
	require.NoError(t, r.err)
	for i, want := range batch {
		got := r.msgs[i]
		require.Equal(t, want.Subject, got.Subject, i)
		require.Equal(t, want.Header, got.Header, i)
		require.True(t, bytes.Equal(want.Data, got.Data), i)
	}

	refused := []Message{{Data: []byte("a")}, {Data: make([]byte, 5000)}, {Data: []byte("c")}}
	n, err = cli.SendMsgs(ctx, refused)
	var tl *MessageTooLargeError
	require.ErrorAs(t, err, &tl)
	require.Equal(t, 1, n)
	n, err = cli.SendMsgs(ctx, refused[2:])
	require.NoError(t, err)
	require.Equal(t, 1, n)
	for _, want := range []string{"a", "c"} {
		got, err := srv.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
}
