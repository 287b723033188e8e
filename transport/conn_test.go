package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

func TestChannelEchoBothDirections(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	require.Equal(t, client.SessionID(), server.SessionID())

	ch, err := client.OpenChannel(ctx, "chat")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "chat", sch.Name())

	require.NoError(t, ch.Send(ctx, []byte("hello")))
	msg, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg))

	require.NoError(t, sch.Send(ctx, []byte("world")))
	msg, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "world", string(msg))

	require.NoError(t, ch.Close())
	_, err = sch.Receive(ctx)
	require.ErrorIs(t, err, io.EOF)
}

func TestGracefulCloseDeliversEverything(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "bulk")
	require.NoError(t, err)
	const n = 5000
	for i := range n {
		require.NoError(t, ch.Send(ctx, binary.BigEndian.AppendUint32(nil, uint32(i))))
	}
	done := make(chan error, 1)
	go func() { done <- client.Close() }()

	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	for i := range n {
		msg, err := sch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(msg))
	}
	_, err = sch.Receive(ctx)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, <-done)
	<-server.Context().Done()
	require.ErrorIs(t, contextCause(server), CodeNoError)
}

func TestManyChannelsChecksummed(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	const channels, msgs = 8, 300
	var g errgroup.Group
	g.Go(func() error {
		for range channels {
			ch, err := server.AcceptChannel(ctx)
			if err != nil {
				return err
			}
			g.Go(func() error { return echoAll(ctx, ch) })
		}
		return nil
	})
	for i := range channels {
		g.Go(func() error { return sendAndVerify(ctx, client, fmt.Sprintf("ch-%d", i), msgs) })
	}
	require.NoError(t, g.Wait())
}

func echoAll(ctx contextT, ch *Channel) error {
	for {
		msg, err := ch.Receive(ctx)
		if errors.Is(err, io.EOF) {
			return ch.Close()
		}
		if err != nil {
			return err
		}
		if err := ch.Send(ctx, msg); err != nil {
			return err
		}
	}
}

func sendAndVerify(ctx contextT, c *Conn, name string, n int) error {
	ch, err := c.OpenChannel(ctx, name)
	if err != nil {
		return err
	}
	if err := testenv.Exchange(ctx, ch, name, n); err != nil {
		return err
	}
	return ch.Close()
}
