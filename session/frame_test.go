package session

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// A frame whose header promises more bytes than arrive before FIN is
// malformed: the channel is reset with PROTOCOL_ERROR, no partial message
// reaches the handler, and the session carries on.
func TestFrameCutShortByFINResetsTheChannel(t *testing.T) {
	got := make(chan Message, 16)
	_, addr := startServer(t, nil, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		got <- m
		_ = s.Send(ctx, m.Channel, m.Data)
	}))
	raw := dialRaw(t, addr)
	for _, tc := range []struct {
		name          string
		announced, do int
	}{
		{"small", 100, 10},     // buffered whole, read from the stream reader
		{"large", 40 << 10, 5}, // read straight into the message, past directReadMin
		{"header", 0, 0},       // FIN inside the frame header itself
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := wire.AppendChannelHeader(nil, "cut-"+tc.name)
			b = append(b, wire.AppendMessage(nil, 0, []byte("whole"))...)
			if tc.announced > 0 {
				frame := wire.AppendMessage(nil, 0, make([]byte, tc.announced))
				b = append(b, frame[:len(frame)-tc.announced+tc.do]...)
			} else {
				b = append(b, wire.AppendMessage(nil, 0, make([]byte, 1000))[0]) // type byte only
			}
			s := raw.openRaw(t, b)
			require.NoError(t, s.Close()) // FIN right after the partial frame
			require.Equal(t, transport.CodeProtocolError, streamResetCode(t, s))
			m := <-got
			require.Equal(t, "whole", string(m.Data), "only the complete message is handled")
			require.Empty(t, got)
		})
	}
	// The session and its other channels carry on.
	good := raw.openRaw(t, wire.AppendMessage(wire.AppendChannelHeader(nil, "ok"), 0, []byte("still here")))
	require.Equal(t, "still here", string((<-got).Data))
	require.NoError(t, good.Close())
	require.NoError(t, raw.qc.Context().Err())
}
