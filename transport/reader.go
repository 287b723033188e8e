package transport

import (
	"errors"
	"io"
	"os"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// streamReader buffers reads from a QUIC stream so that frames can be parsed
// in place. A failed read keeps what was already buffered, so a read cut short
// by a deadline loses nothing.
type streamReader struct {
	src  io.Reader
	buf  []byte
	r, w int
	err  error // sticky read error, returned once the buffer is drained
	base int   // buffer size to return to after a large message
}

func (sr *streamReader) buffered() []byte { return sr.buf[sr.r:sr.w] }

func (sr *streamReader) consume(n int) {
	sr.r += n
	if sr.r == sr.w {
		sr.r, sr.w = 0, 0
		if len(sr.buf) > 4*sr.base {
			sr.buf = nil // drop a buffer grown for one large message
		}
	}
}

// fill reads more data so that at least need bytes could be buffered. It
// returns nil once it has read something.
func (sr *streamReader) fill(need int) error {
	if sr.err != nil {
		return sr.err
	}
	if sr.buf == nil {
		sr.buf = make([]byte, max(sr.base, need))
	}
	if need > len(sr.buf)-sr.r {
		if need > len(sr.buf) {
			nb := make([]byte, max(need, 2*len(sr.buf)))
			sr.w = copy(nb, sr.buf[sr.r:sr.w])
			sr.buf = nb
		} else {
			sr.w = copy(sr.buf, sr.buf[sr.r:sr.w])
		}
		sr.r = 0
	}
	n, err := sr.src.Read(sr.buf[sr.w:])
	sr.w += n
	// A deadline only interrupts this read; any other error ends the stream.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		sr.err = err
	}
	if n > 0 {
		return nil
	}
	return err
}

// readInto reads straight into p, bypassing the buffer, which must be empty.
// Errors are handled as in fill.
func (sr *streamReader) readInto(p []byte) (int, error) {
	if sr.err != nil {
		return 0, sr.err
	}
	n, err := sr.src.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		sr.err = err
	}
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// readNext parses the next item out of sr: it calls parse on what is
// buffered and, while parse reports [wire.ErrShort], reads more and tries
// again. parse returns the item and the number of bytes it used, which are
// consumed. Any other parse error, and any read error, is returned as is.
func readNext[T any](sr *streamReader, parse func([]byte) (T, int, error)) (T, error) {
	for {
		b := sr.buffered()
		v, n, err := parse(b)
		if err == nil {
			sr.consume(n)
			return v, nil
		}
		if !errors.Is(err, wire.ErrShort) {
			return v, err
		}
		if err := sr.fill(len(b) + 1); err != nil {
			var zero T
			return zero, err
		}
	}
}
