package testenv

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// SilentPeer is a hostile quicmsg/1 client: it completes the QUIC and TLS
// handshakes with ALPN quicmsg/1 and then never opens the control stream
// or sends HELLO. It dials from several UDP sockets (one quic.Transport
// each), so that its connections come from many source ports. Its methods
// are safe for concurrent use.
type SilentPeer struct {
	addr *net.UDPAddr
	tls  *tls.Config
	trs  []*quic.Transport
	next atomic.Uint64

	completed, failed atomic.Uint64

	mu    sync.Mutex
	conns []*quic.Conn
	prune int // prune closed connections when conns grows past this
}

// NewSilentPeer returns a silent peer aimed at the server at addr, with
// sockets UDP sockets on the loopback address from (for example
// "127.0.0.1", or "127.0.0.2" to come from another source address than the
// test's honest clients). It does not verify the server's certificate.
// The test's cleanup closes it.
func NewSilentPeer(t testing.TB, addr, from string, sockets int) *SilentPeer {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	// An attacker does not care who the server is; verifying would also tie
	// the peer to this process's test CA.
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{wire.ALPN}}
	p := &SilentPeer{addr: ua, tls: tc, prune: 256}
	for range max(sockets, 1) {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)})
		require.NoError(t, err)
		p.trs = append(p.trs, &quic.Transport{Conn: udp})
	}
	t.Cleanup(p.Close)
	return p
}

// Open dials n connections, at most concurrency at once, each bounded by
// timeout, and keeps those that complete the handshake open without a word.
// It returns when all n dials have ended or ctx is done.
func (p *SilentPeer) Open(ctx context.Context, n, concurrency int, timeout time.Duration) {
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			p.dialOne(ctx, timeout)
		})
	}
	wg.Wait()
}

func (p *SilentPeer) dialOne(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := p.trs[p.next.Add(1)%uint64(len(p.trs))]
	qc, err := tr.Dial(ctx, p.addr, p.tls, &quic.Config{HandshakeIdleTimeout: timeout})
	if err != nil {
		p.failed.Add(1)
		return
	}
	p.completed.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, qc)
	if len(p.conns) > p.prune {
		live := p.conns[:0]
		for _, c := range p.conns {
			if c.Context().Err() == nil {
				live = append(live, c)
			}
		}
		clear(p.conns[len(live):])
		p.conns = live
		p.prune = max(256, 2*len(live))
	}
}

// Completed returns how many dials completed the handshake.
func (p *SilentPeer) Completed() uint64 { return p.completed.Load() }

// Failed returns how many dials failed (refused, timed out).
func (p *SilentPeer) Failed() uint64 { return p.failed.Load() }

// Live returns how many of the peer's connections are still open.
func (p *SilentPeer) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.Context().Err() == nil {
			n++
		}
	}
	return n
}

// Close closes every connection and socket of the peer. It is idempotent.
func (p *SilentPeer) Close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWithError(0, "")
	}
	for _, tr := range p.trs {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
}
