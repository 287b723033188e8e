package main

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
)

func TestQlogTracerWritesOneTracePerConnection(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.GenerateCA("qlog test CA", 0)
	require.NoError(t, err)
	leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Hosts: []string{"localhost"}})
	require.NoError(t, err)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, NextProtos: []string{"qlog-test"}}
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS, &quic.Config{Tracer: qlogTracer(dir, slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	defer ln.Close()

	clientTLS := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"qlog-test"}}
	c, err := quic.DialAddr(testCtx(t), ln.Addr().String(), clientTLS, nil)
	require.NoError(t, err)
	sc, err := ln.Accept(testCtx(t))
	require.NoError(t, err)
	require.NoError(t, c.CloseWithError(0, ""))
	<-sc.Context().Done()
	require.NoError(t, ln.Close())

	require.Eventually(t, func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "*_server.sqlog"))
		if len(files) != 1 {
			return false
		}
		b, _ := os.ReadFile(files[0])
		// A JSON-SEQ record starts with the record separator.
		return bytes.HasPrefix(b, []byte{0x1e}) && bytes.Contains(b, []byte(`"vantage_point"`))
	}, waitTimeout, 5*time.Millisecond, "no qlog trace written")
}
