package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// migrateMessages is how many messages go each way on each channel in the
// migration tests.
const migrateMessages = 200

// types returns the types of the events logged, in order.
func (l *eventLog) types() []EventType {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ts []EventType
	for _, ev := range l.events {
		ts = append(ts, ev.Type)
	}
	return ts
}

// sessionLog records the sessions a server started.
type sessionLog struct {
	mu       sync.Mutex
	sessions []*session.Session
}

func (l *sessionLog) start(s *session.Session) {
	l.mu.Lock()
	l.sessions = append(l.sessions, s)
	l.mu.Unlock()
}

func (l *sessionLog) all() []*session.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*session.Session(nil), l.sessions...)
}

// sendAndEcho sends messages 0..migrateMessages-1 on each channel, reads
// their echoes, checks that they come back once and in order, and calls
// move once a quarter of the echoes are back, while the rest is under way.
func sendAndEcho(t *testing.T, ctx context.Context, chans []*Channel, move func() error) error {
	t.Helper()
	var work []func(func()) error
	for _, ch := range chans {
		work = append(work,
			func(func()) error { return sendSeqs(ctx, ch) },
			func(progress func()) error { return receiveEchoes(ctx, ch, progress) })
	}
	moveErr, err := testenv.Midway(ctx, work, len(chans)*migrateMessages/4, move)
	require.NoError(t, err)
	return moveErr
}

// sendSeqs sends messages 0..migrateMessages-1 on ch.
func sendSeqs(ctx context.Context, ch *Channel) error {
	for i := range migrateMessages {
		if err := ch.Send(ctx, seq(i)); err != nil {
			return fmt.Errorf("%s: send %d: %w", ch.Name(), i, err)
		}
	}
	return nil
}

// receiveEchoes reads migrateMessages echoes on ch, in order.
func receiveEchoes(ctx context.Context, ch *Channel, progress func()) error {
	for i := range migrateMessages {
		m, err := ch.Receive(ctx)
		if err != nil {
			return fmt.Errorf("%s: receive %d: %w", ch.Name(), i, err)
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(string(m), "seq:")); n != i {
			return fmt.Errorf("%s: echo %q where seq:%d was due", ch.Name(), m, i)
		}
		progress()
	}
	return nil
}

// migrationSetup is a recording echo server and a client of it.
type migrationSetup struct {
	rec      *recorder
	sessions *sessionLog
	srv      *session.Server
	events   *eventLog
	client   *Client
	chans    []*Channel
}

func newMigrationSetup(t *testing.T, ctx context.Context, channels int) *migrationSetup {
	t.Helper()
	m := &migrationSetup{rec: newRecorder(), sessions: &sessionLog{}, events: &eventLog{}}
	var addr string
	m.srv, addr = startTestServer(t, &session.Config{OnSessionStart: m.sessions.start}, m.rec)
	var err error
	m.client, err = Dial(ctx, addr, testClientTLS(t), &Config{OnEvent: m.events.add})
	require.NoError(t, err)
	for i := range channels {
		ch, err := m.client.Channel(ctx, fmt.Sprintf("echo%d", i))
		require.NoError(t, err)
		m.chans = append(m.chans, ch)
	}
	return m
}

// requireDelivered checks that the server handled every message of every
// channel once, in order, as often as rounds sent them.
func (m *migrationSetup) requireDelivered(t *testing.T, rounds int) {
	t.Helper()
	var want []int
	for range rounds {
		for i := range migrateMessages {
			want = append(want, i)
		}
	}
	for _, ch := range m.chans {
		require.Equal(t, want, m.rec.waitFor(t, ch.Name(), len(want)), "channel %s", ch.Name())
	}
}

// TestMigrateKeepsTheSession moves a client's connection to another
// socket while traffic flows both ways on four channels: every message
// arrives once and in order, the server keeps the same session and sees the
// new address, the client does not reconnect, and Close leaves no
// goroutine and no socket behind.
func TestMigrateKeepsTheSession(t *testing.T) {
	ctx := testCtx(t)
	m := newMigrationSetup(t, ctx, 4)
	leaks := goleak.IgnoreCurrent()
	conn := m.client.Conn()
	before := conn.LocalAddr().String()

	require.NoError(t, sendAndEcho(t, ctx, m.chans, func() error { return m.client.Migrate(ctx, "127.0.0.1:0") }))

	require.Same(t, conn, m.client.Conn(), "the client's connection was replaced")
	moved := conn.LocalAddr().String()
	require.NotEqual(t, before, moved)
	m.requireDelivered(t, 1)
	sessions := m.sessions.all()
	require.Len(t, sessions, 1)
	require.Equal(t, []*session.Session{sessions[0]}, m.srv.Sessions(), "the server's session was replaced")
	require.Equal(t, conn.SessionID(), sessions[0].ID())
	require.Eventually(t, func() bool { return sessions[0].RemoteAddr().String() == moved },
		10*time.Second, 10*time.Millisecond, "the server never saw the new address %s (still %s)", moved, sessions[0].RemoteAddr())

	st := m.client.Stats()
	require.Equal(t, uint64(1), st.Migrations)
	require.Zero(t, st.Reconnects)
	require.Zero(t, st.MessagesInDoubt)
	require.Zero(t, st.MessagesResent)

	require.NoError(t, m.client.Close())
	require.Equal(t, []EventType{EventConnected, EventClosed}, m.events.types())
	goleak.VerifyNone(t, leaks)
	requireSocketClosed(t, moved)
}

// TestReconnectAfterMigrateDialsAsDial checks the documented choice: a
// reconnect after a migration dials from an address the system chooses,
// not from the one the connection moved to, whose socket closes with the
// connection it was opened for.
func TestReconnectAfterMigrateDialsAsDial(t *testing.T) {
	ctx := testCtx(t)
	m := newMigrationSetup(t, ctx, 2)
	defer func() { require.NoError(t, m.client.Close()) }()
	first := m.client.Conn()
	require.NoError(t, m.client.Migrate(ctx, "127.0.0.1:0"))
	moved := first.LocalAddr().String()

	// Dial returns once the handshake and HELLO are done, which can be
	// before the server's Serve has made the connection a session.
	require.Eventually(t, func() bool {
		_, ok := m.srv.Session(first.SessionID())
		return ok
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, m.srv.Disconnect(first.SessionID(), transport.CodeDisconnected, "test"))
	require.Eventually(t, func() bool {
		c := m.client.Conn()
		return c != nil && c != first
	}, 10*time.Second, 5*time.Millisecond)
	requireSocketClosed(t, moved)
	require.NotEqual(t, moved, m.client.Conn().LocalAddr().String())
	require.NoError(t, sendAndEcho(t, ctx, m.chans, func() error { return nil }))
	require.Equal(t, uint64(1), m.client.Stats().Migrations)
}

func TestMigrateErrors(t *testing.T) {
	ctx := testCtx(t)
	m := newMigrationSetup(t, ctx, 1)

	var me *transport.MigrationError
	require.ErrorAs(t, m.client.Migrate(ctx, "no address"), &me)
	require.Zero(t, m.client.Stats().Migrations)

	// A server that is gone: the client is reconnecting, with nothing to move.
	require.NoError(t, m.srv.Close())
	require.Eventually(t, func() bool { return m.client.Status() == StatusReconnecting }, 10*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, m.client.Migrate(ctx, "127.0.0.1:0"), ErrNotConnected)

	require.NoError(t, m.client.Close())
	err := m.client.Migrate(ctx, "127.0.0.1:0")
	require.ErrorIs(t, err, ErrClosed)
	require.True(t, errors.Is(err, net.ErrClosed))
}

// requireSocketClosed checks that nothing holds the UDP address addr any
// more: it can be bound again.
func requireSocketClosed(t *testing.T, addr string) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	c, err := net.ListenUDP("udp", ua)
	require.NoError(t, err, "the socket of %s is still open", addr)
	require.NoError(t, c.Close())
}
