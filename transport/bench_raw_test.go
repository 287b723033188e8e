package transport

// Raw quic-go baseline for the benchmarks in bench_test.go: the same TLS 1.3
// configuration, the same quic.Config and the same message framing as
// quicmsg, without quicmsg in between. The writer encodes frames through a
// 64 KiB bufio.Writer; the reader parses them out of a 64 KiB bufio.Reader
// into one reused buffer.

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

const rawBufSize = 64 << 10

// rawConfigs returns the TLS and QUIC configurations quicmsg itself would use
// with the default Config.
func rawConfigs(tb testing.TB) (srv, cli *tls.Config, qc *quic.Config) {
	tb.Helper()
	cfg, err := (&Config{}).withDefaults()
	require.NoError(tb, err)
	srv, err = serverTLS(testTLS(tb).server)
	require.NoError(tb, err)
	cli, err = clientTLS(testTLS(tb).client)
	require.NoError(tb, err)
	return srv, cli, cfg.quicConfig()
}

// rawPair is a client and a server quic-go connection with one bidirectional
// stream between them, opened by the client.
type rawPair struct {
	cli, srv *quic.Conn
	cs, ss   *quic.Stream // the client's and the server's end of the stream
}

func newRawPair(tb testing.TB) *rawPair {
	tb.Helper()
	stls, ctls, qconf := rawConfigs(tb)
	ln, err := quic.ListenAddr("127.0.0.1:0", stls, qconf)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &rawPair{}
	p.cli, err = quic.DialAddr(ctx, ln.Addr().String(), ctls, qconf)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.cli.CloseWithError(0, "") })
	p.srv, err = ln.Accept(ctx)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.srv.CloseWithError(0, "") })
	p.cs, err = p.cli.OpenStreamSync(ctx)
	require.NoError(tb, err)
	// Like a quicmsg channel header: the peer sees the stream only once
	// something was written on it.
	_, err = p.cs.Write([]byte{wire.StreamChannel})
	require.NoError(tb, err)
	p.ss, err = p.srv.AcceptStream(ctx)
	require.NoError(tb, err)
	var one [1]byte
	_, err = io.ReadFull(p.ss, one[:])
	require.NoError(tb, err)
	return p
}

// countingWriter counts the writes that reach the QUIC stream.
type countingWriter struct {
	w      io.Writer
	writes uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.w.Write(p)
}

// rawWriter writes message frames through a 64 KiB bufio.Writer.
type rawWriter struct {
	cw  countingWriter
	bw  *bufio.Writer
	hdr [wire.MessageOverhead + 2]byte
}

func newRawWriter(w io.Writer) *rawWriter {
	rw := &rawWriter{cw: countingWriter{w: w}}
	rw.bw = bufio.NewWriterSize(&rw.cw, rawBufSize)
	return rw
}

// write buffers one frame; bufio writes through to the stream whenever its
// buffer fills.
func (w *rawWriter) write(p []byte) error {
	h := append(w.hdr[:0], wire.FrameMessage, 0)
	h = quicvarint.Append(h, uint64(len(p)))
	if _, err := w.bw.Write(h); err != nil {
		return err
	}
	_, err := w.bw.Write(p)
	return err
}

func (w *rawWriter) flush() error { return w.bw.Flush() }

// rawReader parses message frames from a 64 KiB bufio.Reader into one
// reused buffer.
type rawReader struct {
	br    *bufio.Reader
	buf   []byte
	limit int
	alloc bool // a new slice for each message, as quicmsg's Receive returns
}

func newRawReader(r io.Reader) *rawReader {
	return &rawReader{br: bufio.NewReaderSize(r, rawBufSize), buf: make([]byte, rawBufSize), limit: DefaultMaxMessageSize}
}

// read returns the next message's payload, valid until the next call unless
// r.alloc is set.
func (r *rawReader) read() ([]byte, error) {
	h, err := r.br.Peek(3) // the shortest frame header
	if err != nil {
		return nil, err
	}
	h, err = r.br.Peek(2 + 1<<(h[2]>>6)) // type, flags, varint length
	if err != nil {
		return nil, err
	}
	_, size, n, err := wire.ParseMessageHeader(h, r.limit)
	if err != nil {
		return nil, err
	}
	_, _ = r.br.Discard(n)
	if r.alloc || cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	if _, err := io.ReadFull(r.br, r.buf[:size]); err != nil {
		return nil, err
	}
	return r.buf[:size], nil
}
