package transport

import (
	"context"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
	"github.com/stretchr/testify/require"
)

// priorityLog records the stream priorities quic-go was told to use on one
// side's connections (its qlog priority_updated events).
type priorityLog struct {
	mu     sync.Mutex
	events []qlog.StreamPriorityUpdated
}

func (l *priorityLog) tracer(context.Context, bool, quic.ConnectionID) qlogwriter.Trace { return l }

func (l *priorityLog) AddProducer() qlogwriter.Recorder { return l }

func (l *priorityLog) RecordEvent(e qlogwriter.Event) {
	if p, ok := e.(qlog.StreamPriorityUpdated); ok {
		l.mu.Lock()
		l.events = append(l.events, p)
		l.mu.Unlock()
	}
}

func (l *priorityLog) Close() error { return nil }

func (l *priorityLog) list() []qlog.StreamPriorityUpdated {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]qlog.StreamPriorityUpdated(nil), l.events...)
}

// A channel's priority travels in its header: the acceptor sees it in
// Options, and both ends set it on their send side of the stream; a
// channel without one changes nothing.
func TestChannelPriorityAppliedByBothEnds(t *testing.T) {
	var cliLog, srvLog priorityLog
	client, server, _ := pair(t, &Config{Tracer: srvLog.tracer}, &Config{Tracer: cliLog.tracer})
	ctx := testCtx(t)

	plain, plainSrv := openNamed(t, client, server, "bulk")
	require.Zero(t, plainSrv.Options())
	require.Equal(t, DefaultUrgency, plainSrv.Options().Priority.Urgency())

	opts := ChannelOptions{Priority: NewPriority(0, false)}
	cli, err := client.OpenChannelWith(ctx, "interactive", opts)
	require.NoError(t, err)
	require.NoError(t, cli.Send(ctx, []byte("ping")))
	srv, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, opts, srv.Options())
	require.Equal(t, "u=0", srv.Options().Priority.String())

	want := []qlog.StreamPriorityUpdated{{StreamID: cli.s.StreamID(), Urgency: 0, Incremental: false}}
	require.Equal(t, want, cliLog.list(), "the opener sets the priority")
	require.Equal(t, want, srvLog.list(), "the acceptor sets the priority")

	// Both directions still carry messages.
	b, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "ping", string(b))
	require.NoError(t, srv.Send(ctx, []byte("pong")))
	b, err = cli.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "pong", string(b))
	require.NoError(t, plain.Close())

	// A group and a priority together.
	both := ChannelOptions{Group: "g", Priority: NewPriority(7, true)}
	cli2, err := client.OpenChannelWith(ctx, "orders", both)
	require.NoError(t, err)
	require.NoError(t, cli2.Send(ctx, []byte("x")))
	srv2, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, both, srv2.Options())
	require.Len(t, srvLog.list(), 2)
	require.Equal(t, qlog.StreamPriorityUpdated{StreamID: cli2.s.StreamID(), Urgency: 7, Incremental: true}, srvLog.list()[1])

	for _, u := range []int{-1, MaxUrgency + 1} {
		_, err := client.OpenChannelWith(ctx, "x", ChannelOptions{Priority: NewPriority(u, false)})
		require.ErrorIs(t, err, ErrInvalidPriority, u)
	}
}

// To a peer without CHANNEL_OPTS a priority alone still opens the channel,
// with a plain header: only the opener applies it.
func TestChannelPriorityToAPeerWithoutHeaders(t *testing.T) {
	var cliLog, srvLog priorityLog
	client, server, _ := pair(t, &Config{Tracer: srvLog.tracer, noHeaders: true}, &Config{Tracer: cliLog.tracer})
	ctx := testCtx(t)
	cli, err := client.OpenChannelWith(ctx, "interactive", ChannelOptions{Priority: NewPriority(1, false)})
	require.NoError(t, err)
	require.NoError(t, cli.Send(ctx, []byte("ping")))
	srv, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Zero(t, srv.Options())
	b, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "ping", string(b))
	require.Len(t, cliLog.list(), 1)
	require.Empty(t, srvLog.list())
}
