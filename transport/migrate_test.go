package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// migrateMessages is how many messages each side sends on each channel
// in the migration tests.
const migrateMessages = 300

// seqMsg is message i of a migration test: its sequence number, padded.
func seqMsg(i int) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

// sendSeq sends messages 0..n-1 on ch.
func sendSeq(ctx context.Context, ch *Channel, n int) error {
	for i := range n {
		if err := ch.Send(ctx, seqMsg(i)); err != nil {
			return fmt.Errorf("channel %s: send %d: %w", ch.Name(), i, err)
		}
	}
	return nil
}

// receiveSeq receives n messages on ch and checks that they are 0..n-1 in
// order; progress counts them.
func receiveSeq(ctx context.Context, ch *Channel, n int, progress func()) error {
	for i := range n {
		m, err := ch.Receive(ctx)
		if err != nil {
			return fmt.Errorf("channel %s: receive %d: %w", ch.Name(), i, err)
		}
		if got := int(binary.BigEndian.Uint32(m)); got != i {
			return fmt.Errorf("channel %s: message %d where %d was due", ch.Name(), got, i)
		}
		progress()
	}
	return nil
}

// openPairs opens n channels from the client and accepts them on the server.
func openPairs(t *testing.T, ctx context.Context, client, server *Conn, n int) (cli, srv []*Channel) {
	t.Helper()
	for i := range n {
		c, err := client.OpenChannel(ctx, fmt.Sprintf("ch%d", i))
		require.NoError(t, err)
		s, err := server.AcceptChannel(ctx)
		require.NoError(t, err)
		cli, srv = append(cli, c), append(srv, s)
	}
	return cli, srv
}

// exchangeAcross runs traffic both ways on every channel pair and calls
// move once a quarter of it has arrived, while the rest is under way. It
// returns move's error; every message must arrive once and in order.
func exchangeAcross(t *testing.T, ctx context.Context, cli, srv []*Channel, move func() error) error {
	t.Helper()
	var work []func(func()) error
	for i := range cli {
		for _, pair := range [][2]*Channel{{cli[i], srv[i]}, {srv[i], cli[i]}} {
			work = append(work,
				func(func()) error { return sendSeq(ctx, pair[0], migrateMessages) },
				func(progress func()) error { return receiveSeq(ctx, pair[1], migrateMessages, progress) })
		}
	}
	moveErr, err := testenv.Midway(ctx, work, len(cli)*migrateMessages/2, move)
	require.NoError(t, err)
	return moveErr
}

func TestMigrateKeepsChannelsFlowingBothWays(t *testing.T) {
	for _, dial := range []string{"Dial", "DialEarly"} {
		t.Run(dial, func(t *testing.T) {
			ctx := testCtx(t)
			ln := listen(t, nil)
			var client *Conn
			var err error
			if dial == "Dial" {
				client, err = Dial(ctx, ln.Addr().String(), testTLS(t).client, nil)
			} else {
				client, err = DialEarly(ctx, ln.Addr().String(), testTLS(t).client, nil)
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, client.CloseWithError(CodeNoError, "")) }()
			server, err := ln.Accept(ctx)
			require.NoError(t, err)
			defer func() { require.NoError(t, server.CloseWithError(CodeNoError, "")) }()
			before := server.RemoteAddr().String()
			cli, srv := openPairs(t, ctx, client, server, 4)

			err = exchangeAcross(t, ctx, cli, srv, func() error { return client.MigrateAddr(ctx, "127.0.0.1:0") })
			require.NoError(t, err)

			moved := client.LocalAddr().String()
			require.NotEqual(t, before, moved)
			require.Eventually(t, func() bool { return server.RemoteAddr().String() == moved },
				10*time.Second, 10*time.Millisecond, "the server never saw the client's new address %s (still %s)", moved, server.RemoteAddr())
			require.Equal(t, client.SessionID(), server.SessionID())
			require.NoError(t, server.Context().Err(), "the server's connection ended")
			// A second migration, to another IP address (the kernel routes
			// 127.0.0.0/8 to the loopback interface), works the same way.
			require.NoError(t, exchangeAcross(t, ctx, cli, srv, func() error { return client.MigrateAddr(ctx, "127.0.0.2:0") }))
			moved = client.LocalAddr().String()
			require.Equal(t, "127.0.0.2", client.LocalAddr().(*net.UDPAddr).IP.String())
			require.Eventually(t, func() bool { return server.RemoteAddr().String() == moved },
				10*time.Second, 10*time.Millisecond, "the server never saw the client's new address %s (still %s)", moved, server.RemoteAddr())
		})
	}
}

func TestMigrateRefusedOnTheServerSide(t *testing.T) {
	ctx := testCtx(t)
	client, server, _ := pair(t, nil, nil)
	err := server.MigrateAddr(ctx, "127.0.0.1:0")
	var me *MigrationError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, ErrNotClient)
	require.Contains(t, err.Error(), "only the client side")

	tr := &quic.Transport{Conn: udpSocket(t, "127.0.0.1:0")}
	defer func() { require.NoError(t, tr.Close()) }()
	require.ErrorIs(t, server.Migrate(ctx, tr), ErrNotClient)
	// Both connections carry on.
	requireExchange(t, ctx, client, server)
}

func TestMigrateAfterCloseReportsClosed(t *testing.T) {
	ctx := testCtx(t)
	client, _, _ := pair(t, nil, nil)
	require.NoError(t, client.CloseWithError(CodeNoError, ""))
	err := client.MigrateAddr(ctx, "127.0.0.1:0")
	var me *MigrationError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestMigrateToABadAddressLeavesTheConnection(t *testing.T) {
	ctx := testCtx(t)
	client, server, _ := pair(t, nil, nil)
	before := client.LocalAddr()
	var me *MigrationError
	require.ErrorAs(t, client.MigrateAddr(ctx, "not an address"), &me)
	require.Equal(t, "bad local address", me.Reason)
	// 192.0.2.1 (TEST-NET-1) is not an address of this host.
	require.ErrorAs(t, client.MigrateAddr(ctx, "192.0.2.1:0"), &me)
	require.Equal(t, "cannot open a UDP socket there", me.Reason)
	require.Equal(t, before, client.LocalAddr())
	requireExchange(t, ctx, client, server)
}

// TestMigrateWithoutAnswerStaysOnTheOldPath black-holes the network while
// the client migrates: the probe gets no answer within the handshake
// timeout, and once the network is back the connection carries on from
// its old socket.
func TestMigrateWithoutAnswerStaysOnTheOldPath(t *testing.T) {
	ctx := testCtx(t)
	cfg := &Config{HandshakeTimeout: time.Second}
	ln := listen(t, cfg)
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	defer func() { require.NoError(t, proxy.Close()) }()
	client, err := Dial(ctx, proxy.Addr().String(), testTLS(t).client, cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, client.CloseWithError(CodeNoError, "")) }()
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, server.CloseWithError(CodeNoError, "")) }()
	requireExchange(t, ctx, client, server)
	before := client.LocalAddr()

	proxy.SetBlackHole(true)
	err = client.MigrateAddr(ctx, "127.0.0.1:0")
	proxy.SetBlackHole(false)
	var me *MigrationError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, ErrNoPathAnswer)
	require.True(t, me.Timeout())
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.Contains(t, err.Error(), "handshake timeout")

	require.Equal(t, before, client.LocalAddr())
	requireExchange(t, ctx, client, server)
}

func TestMigrateHonoursItsContext(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An ended context opens no socket and uses up none of the
	// MaxMigrationPaths: a live migration still works afterwards.
	for range MaxMigrationPaths + 1 {
		err := client.MigrateAddr(ctx, "127.0.0.1:0")
		require.ErrorIs(t, err, context.Canceled)
	}
	live := testCtx(t)
	require.NoError(t, client.MigrateAddr(live, "127.0.0.1:0"))
	requireExchange(t, live, client, server)
}

// A migration waiting for another one of the same connection gives up
// when its own context ends.
func TestMigrateWaitsForItsTurnNoLongerThanItsContext(t *testing.T) {
	client, _, _ := pair(t, nil, nil)
	client.mig.turn <- struct{}{} // another migration is under way
	defer client.endTurn()
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	err := client.MigrateAddr(ctx, "127.0.0.1:0")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var me *MigrationError
	require.ErrorAs(t, err, &me)
}

// TestMigrateBackToAnEarlierSocket moves the connection to a socket of the
// caller's, to a second one, and back to the first.
func TestMigrateBackToAnEarlierSocket(t *testing.T) {
	ctx := testCtx(t)
	client, server, _ := pair(t, nil, nil)
	tr1 := &quic.Transport{Conn: udpSocket(t, "127.0.0.1:0")}
	tr2 := &quic.Transport{Conn: udpSocket(t, "127.0.0.1:0")}
	// The caller's transports outlive the connection.
	defer func() { require.NoError(t, tr1.Close()); require.NoError(t, tr2.Close()) }()
	defer func() { require.NoError(t, client.CloseWithError(CodeNoError, "")) }()
	for _, tr := range []*quic.Transport{tr1, tr2, tr1, tr1} {
		require.NoError(t, client.Migrate(ctx, tr))
		require.Equal(t, tr.Conn.LocalAddr(), client.LocalAddr())
		requireExchange(t, ctx, client, server)
	}
	require.Eventually(t, func() bool { return server.RemoteAddr().String() == tr1.Conn.LocalAddr().String() },
		10*time.Second, 10*time.Millisecond)
}

func TestMigrateStopsAtMaxMigrationPaths(t *testing.T) {
	ctx := testCtx(t)
	client, server, _ := pair(t, nil, nil)
	for i := range MaxMigrationPaths {
		require.NoError(t, client.MigrateAddr(ctx, fmt.Sprintf("127.0.0.%d:0", 2+i)))
	}
	before := client.LocalAddr()
	err := client.MigrateAddr(ctx, fmt.Sprintf("127.0.0.%d:0", 2+MaxMigrationPaths))
	require.ErrorIs(t, err, ErrTooManyPaths)
	require.Equal(t, before, client.LocalAddr())
	// Moving back to an address the connection used needs no new socket.
	require.NoError(t, client.MigrateAddr(ctx, "127.0.0.2:0"))
	require.Equal(t, "127.0.0.2", client.LocalAddr().(*net.UDPAddr).IP.String())
	requireExchange(t, ctx, client, server)
}

// TestMigrateAddrBackAndForthReusesSockets moves between two addresses
// more often than MaxMigrationPaths: MigrateAddr moves back to the socket
// it opened there before.
func TestMigrateAddrBackAndForthReusesSockets(t *testing.T) {
	ctx := testCtx(t)
	client, server, _ := pair(t, nil, nil)
	seen := map[string]bool{}
	for i := range 2 * MaxMigrationPaths {
		require.NoError(t, client.MigrateAddr(ctx, fmt.Sprintf("127.0.0.%d:0", 2+i%2)))
		seen[client.LocalAddr().String()] = true
		requireExchange(t, ctx, client, server)
	}
	require.Len(t, seen, 2)
	require.Eventually(t, func() bool { return server.RemoteAddr().String() == client.LocalAddr().String() },
		10*time.Second, 10*time.Millisecond)
}

// udpSocket opens a UDP socket on addr, closed at the end of the test.
func udpSocket(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	c, err := net.ListenUDP("udp", ua)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireExchange checks that a message goes each way on a new channel.
func requireExchange(t *testing.T, ctx context.Context, client, server *Conn) {
	t.Helper()
	cli, srv := openPairs(t, ctx, client, server, 1)
	require.NoError(t, cli[0].Send(ctx, []byte("ping")))
	m, err := srv[0].Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "ping", string(m))
	require.NoError(t, srv[0].Send(ctx, []byte("pong")))
	m, err = cli[0].Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "pong", string(m))
	cli[0].Reset(CodeChannelClosed)
	srv[0].Reset(CodeChannelClosed)
}
