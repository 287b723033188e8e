package transport

import (
	"bytes"
	"encoding/hex"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/quiclb"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// cidWatch reads the connection IDs of the QUIC packets a udpproxy relays
// (RFC 9000, section 17: long headers state both lengths; a short header's
// destination ID is serverLen bytes long towards the server, whose IDs the
// test chose). It keeps distinct IDs only, so that it stays small however
// many packets pass.
type cidWatch struct {
	serverLen int

	mu        sync.Mutex
	initial   string              // destination ID of the client's first Initial: its own choice
	serverSrc map[string]struct{} // source IDs of the server's long headers
	longDst   map[string]struct{} // destination IDs of the client's long headers
	shortDst  map[string]struct{} // destination IDs of the client's short headers
}

func newCIDWatch(p *udpproxy.Proxy, serverLen int) *cidWatch {
	w := &cidWatch{serverLen: serverLen, serverSrc: map[string]struct{}{}, longDst: map[string]struct{}{}, shortDst: map[string]struct{}{}}
	p.SetDropFunc(udpproxy.ToServer, func(pkt []byte) bool { w.toServer(pkt); return false })
	p.SetDropFunc(udpproxy.ToClient, func(pkt []byte) bool { w.toClient(pkt); return false })
	return w
}

// longHeaderIDs returns the destination and source IDs of a long header
// packet; ok is false for a short header, a version negotiation packet or
// a truncated one. Coalesced packets share these IDs, so the first suffices.
func longHeaderIDs(pkt []byte) (dst, src []byte, ok bool) {
	if len(pkt) < 6 || pkt[0]&0x80 == 0 || (pkt[1]|pkt[2]|pkt[3]|pkt[4]) == 0 {
		return nil, nil, false
	}
	rest := pkt[5:]
	dl := int(rest[0])
	if len(rest) < 1+dl+1 {
		return nil, nil, false
	}
	dst, rest = rest[1:1+dl], rest[1+dl:]
	sl := int(rest[0])
	if len(rest) < 1+sl {
		return nil, nil, false
	}
	return dst, rest[1 : 1+sl], true
}

func (w *cidWatch) toServer(pkt []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if dst, _, ok := longHeaderIDs(pkt); ok {
		if w.initial == "" {
			w.initial = string(dst)
		}
		w.longDst[string(dst)] = struct{}{}
		return
	}
	if len(pkt) > w.serverLen && pkt[0]&0x80 == 0 {
		w.shortDst[string(pkt[1:1+w.serverLen])] = struct{}{}
	}
}

func (w *cidWatch) toClient(pkt []byte) {
	if _, src, ok := longHeaderIDs(pkt); ok {
		w.mu.Lock()
		w.serverSrc[string(src)] = struct{}{}
		w.mu.Unlock()
	}
}

// seen returns copies of what w collected.
func (w *cidWatch) seen() (initial string, serverSrc, longDst, shortDst []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := func(m map[string]struct{}) (r []string) {
		for k := range m {
			r = append(r, k)
		}
		return r
	}
	return w.initial, keys(w.serverSrc), keys(w.longDst), keys(w.shortDst)
}

// requireServerID fails unless cid is one of gen's: its server ID and
// config rotation, read as a balancer reads them.
func requireServerID(t *testing.T, gen *quiclb.Generator, rotation uint8, cid, what string) {
	t.Helper()
	require.Len(t, cid, gen.ConnectionIDLen(), "%s %x", what, cid)
	d, err := quiclb.Decode([]byte(cid), len(gen.ServerID()))
	require.NoError(t, err, "%s %x", what, cid)
	require.Equal(t, gen.ServerID(), d.ServerID, "%s %x", what, cid)
	require.Equal(t, rotation, d.ConfigRotation, "%s %x", what, cid)
}

func TestListenerConnectionIDsCarryTheServerIDOnTheWire(t *testing.T) {
	const rotation = 2
	gen, err := quiclb.New(quiclb.Config{ServerID: []byte{0x0a, 0x1b, 0x2c}, ConfigRotation: rotation})
	require.NoError(t, err)
	ln := listen(t, &Config{ConnectionIDGenerator: gen})
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	watch := newCIDWatch(proxy, gen.ConnectionIDLen())

	ctx := testCtx(t)
	client, err := Dial(ctx, proxy.Addr().String(), testTLS(t).client, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.CloseWithError(CodeNoError, "") })
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.CloseWithError(CodeNoError, "") })
	send, recv := channelPair(ctx, t, client, server, "lb")
	exchange := func(msg string) {
		t.Helper()
		require.NoError(t, send.Send(ctx, []byte(msg)))
		got, err := recv.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	exchange("on the first path")
	before := server.RemoteAddr().String() // the proxy's socket for the client's first one
	// A new path takes a connection ID that the server issued in a
	// NEW_CONNECTION_ID frame: encrypted, so it is checked where the client
	// uses it, as the destination of its packets.
	require.NoError(t, client.MigrateAddr(ctx, "127.0.0.1:0"))
	exchange("on the second path")
	require.Eventually(t, func() bool { return server.RemoteAddr().String() != before }, 10*time.Second, 10*time.Millisecond,
		"the server never followed the client to its new address")

	initial, serverSrc, longDst, shortDst := watch.seen()
	require.NotEmpty(t, serverSrc, "no long header packet from the server")
	for _, cid := range serverSrc {
		requireServerID(t, gen, rotation, cid, "source ID of the server's handshake")
	}
	handshakeDst := 0
	for _, cid := range longDst {
		if cid != initial { // the client's own choice, routed by the balancer's fallback
			requireServerID(t, gen, rotation, cid, "destination ID of the client's handshake")
			handshakeDst++
		}
	}
	require.Positive(t, handshakeDst, "no client handshake packet went to the server's ID")
	require.GreaterOrEqual(t, len(shortDst), 2, "the client used one connection ID on two paths")
	fromFrames := 0
	for _, cid := range shortDst {
		requireServerID(t, gen, rotation, cid, "destination ID of a client's 1-RTT packet")
		if !slices.Contains(serverSrc, cid) {
			fromFrames++
		}
	}
	require.Positive(t, fromFrames, "no 1-RTT packet went to an ID from NEW_CONNECTION_ID")
	t.Logf("server ID %s in %d handshake source IDs and %d distinct 1-RTT destination IDs (%d of them from NEW_CONNECTION_ID)",
		hex.EncodeToString(gen.ServerID()), len(serverSrc), len(shortDst), fromFrames)
}

// badLengthGenerator makes connection IDs of a length QUIC version 1 does
// not allow.
type badLengthGenerator struct{ n int }

func (g badLengthGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	return quic.ConnectionIDFromBytes(bytes.Repeat([]byte{1}, g.n)), nil
}

func (g badLengthGenerator) ConnectionIDLen() int { return g.n }

func TestListenRefusesConnectionIDsOfABadLength(t *testing.T) {
	for _, n := range []int{0, 21} {
		_, err := Listen("127.0.0.1:0", testTLS(t).server, &Config{ConnectionIDGenerator: badLengthGenerator{n}})
		require.ErrorContains(t, err, "Config.ConnectionIDGenerator", "length %d", n)
	}
}
