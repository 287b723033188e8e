package main

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/quiclb"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

func TestServerIDFlagReachesTheTransport(t *testing.T) {
	o, err := parseFlags([]string{"-dev-certs", t.TempDir()}, io.Discard)
	require.NoError(t, err)
	conf, err := transportConfig(o, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Nil(t, conf.ConnectionIDGenerator, "without -server-id quic-go's random IDs stay")

	o, err = parseFlags([]string{"-dev-certs", t.TempDir(), "-server-id", "0x0A1B"}, io.Discard)
	require.NoError(t, err)
	conf, err = transportConfig(o, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotNil(t, conf.ConnectionIDGenerator)
	cid, err := conf.ConnectionIDGenerator.GenerateConnectionID()
	require.NoError(t, err)
	d, err := quiclb.Decode(cid.Bytes(), 2)
	require.NoError(t, err)
	require.Equal(t, quiclb.Decoded{ConfigRotation: 0, ServerID: []byte{0x0a, 0x1b}}, d)
}

// A balancer in front of quicsrv -server-id reads the server ID from the
// destination connection ID of every short header packet a client sends,
// taking the ID's length from its first octet.
func TestServerIDIsInTheConnectionIDsClientsSendTo(t *testing.T) {
	ts := startServer(t, "-server-id", "c0ffee")
	ts.waitLog(t, `server_id=c0ffee connection_id_bytes=12`)
	proxy, err := udpproxy.New(ts.addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	var mu sync.Mutex
	routed, unroutable := 0, 0
	proxy.SetDropFunc(udpproxy.ToServer, func(pkt []byte) bool {
		if len(pkt) < 2 || pkt[0]&0x80 != 0 { // long header: the handshake
			return false
		}
		n := quiclb.DescribedLen(pkt[1])
		d, err := quiclb.Decode(pkt[1:min(1+n, len(pkt))], 3)
		mu.Lock()
		defer mu.Unlock()
		if err == nil && string(d.ServerID) == "\xc0\xff\xee" {
			routed++
		} else {
			unroutable++
		}
		return false
	})

	c := dial(t, proxy.Addr().String(), ts.clientTLS(t))
	ch := openChannel(t, c, "lb")
	require.NoError(t, ch.Send(testCtx(t), []byte("through the balancer")))
	require.NoError(t, c.Close())

	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, routed, "no short header packet reached the server")
	require.Zero(t, unroutable, "short header packets whose destination ID did not carry the server ID")
}
