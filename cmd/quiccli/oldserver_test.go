package main

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// startOldServer runs a quicmsg server of a release that predates PING
// and MODE, written with plain quic-go: it answers each connection's HELLO
// with one that carries neither, and closes the connection at the
// client's graceful GOAWAY. It returns the server's address and a CA file
// that trusts it.
func startOldServer(t *testing.T) (addr, caFile string) {
	t.Helper()
	ca, leaf := testPKI(t)
	cert := leaf.TLSCertificate()
	tc, err := certs.ServerConfig(certs.ServerOptions{Certificate: &cert})
	require.NoError(t, err)
	tc.NextProtos = []string{wire.ALPN}
	tc.MinVersion = tls.VersionTLS13
	ln, err := quic.ListenAddr("127.0.0.1:0", tc, &quic.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			qc, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { serveOld(ctx, qc) })
		}
	})
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), writeCA(t, ca)
}

// serveOld answers the HELLO on qc and reads control frames until the
// client's graceful GOAWAY, or until ctx ends.
func serveOld(ctx context.Context, qc *quic.Conn) {
	defer qc.CloseWithError(0, "")
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		return
	}
	hello := wire.Hello{Version: wire.Version, SessionID: make([]byte, 16), MaxMessageSize: 1 << 20, PendingCap: 1000}
	var buf []byte
	answered := false
	b := make([]byte, 4096)
	for {
		n, err := s.Read(b)
		if err != nil {
			return
		}
		buf = append(buf, b[:n]...)
		if !answered && len(buf) > 0 && buf[0] == wire.StreamControl {
			buf = buf[1:]
			answered = true
			if _, err := s.Write(wire.AppendControl(nil, wire.Control{Type: wire.ControlHello, Hello: hello})); err != nil {
				return
			}
		}
		for {
			f, used, err := wire.ParseControl(buf)
			if errors.Is(err, wire.ErrShort) {
				break
			}
			if err != nil || f.Type == wire.ControlGoAway || f.Type == wire.ControlPing {
				return // a PING is an unknown frame to this release: it closes
			}
			buf = buf[used:]
		}
	}
}

func TestPingAgainstAServerThatPredatesPingSaysSoAtOnce(t *testing.T) {
	addr, ca := startOldServer(t)
	got := runCLI(t, nil, "-addr", addr, "-ca", ca, "-timeout", "1m", "ping", "-count", "1")
	require.Equal(t, exitError, got.code, got.stderr)
	require.Equal(t, "the server at "+addr+" does not answer PING (a quicmsg release before it): use quiccli ping -echo against a server in echo mode", got.err.Error())
	var ce *transport.CapabilityError
	require.ErrorAs(t, got.err, &ce)
}
