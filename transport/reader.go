package transport

import (
	"errors"
	"io"
	"os"
	"sync"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// smallReadBuffer is the size of the buffer a channel's stream reader holds
// inline: a read that follows an empty buffer goes there, so that a reader
// waiting on an idle stream holds no more than this.
const smallReadBuffer = 512

// smallControlBuffer is the same for the control stream, whose frames are
// mostly a few bytes (ACK, SLOW_DOWN, RESUME); a larger one (HELLO,
// GOAWAY with a reason, RESUME_STATE) is read into a buffer made for it.
const smallControlBuffer = 128

// readBuffers holds the channel read buffers (channelReadBuffer bytes) that
// no stream reader is using: a reader takes one when data arrives faster
// than its small buffer holds and gives it back as soon as it has consumed
// everything buffered, so that an idle channel holds none.
var readBuffers = sync.Pool{New: func() any { return new([channelReadBuffer]byte) }}

// streamReader buffers reads from a QUIC stream so that frames can be parsed
// in place. A failed read keeps what was already buffered, so a read cut short
// by a deadline loses nothing.
//
// It reads into its small buffer first. Once a read fills that (the stream
// has more waiting) or a frame needs more room, it moves to a buffer of base
// bytes (from readBuffers for a channel), larger if a frame needs it; it
// gives that buffer up when it has consumed everything buffered.
type streamReader struct {
	src  io.Reader
	buf  []byte // small[:], a pooled buffer (pooled), or one made for a large frame
	r, w int
	err  error // sticky read error, returned once the buffer is drained
	base int   // size of the larger buffer

	pooled bool   // buf is from readBuffers
	full   bool   // the last read filled the small buffer: more is likely waiting
	small  []byte // the small buffer, in the reader's allocation (newStreamReader)
}

// newStreamReader returns a channel's reader of src with a small buffer of
// smallReadBuffer bytes, and base as the size of the larger one.
func newStreamReader(src io.Reader, base int) *streamReader {
	r := &struct {
		sr    streamReader
		small [smallReadBuffer]byte
	}{}
	r.sr = streamReader{src: src, base: base, small: r.small[:]}
	return &r.sr
}

// newControlReader returns the reader of a control stream, with a small
// buffer of smallControlBuffer bytes.
func newControlReader(src io.Reader) *streamReader {
	r := &struct {
		sr    streamReader
		small [smallControlBuffer]byte
	}{}
	r.sr = streamReader{src: src, base: 256, small: r.small[:]}
	return &r.sr
}

func (sr *streamReader) buffered() []byte { return sr.buf[sr.r:sr.w] }

func (sr *streamReader) consume(n int) {
	sr.r += n
	if sr.r == sr.w {
		sr.r, sr.w = 0, 0
		sr.release()
	}
}

// release gives up a larger buffer, which must be empty.
func (sr *streamReader) release() {
	if sr.pooled {
		readBuffers.Put((*[channelReadBuffer]byte)(sr.buf))
		sr.pooled = false
	}
	sr.buf = nil
}

// fill reads more data so that at least need bytes could be buffered. It
// returns nil once it has read something.
func (sr *streamReader) fill(need int) error {
	if sr.err != nil {
		return sr.err
	}
	sr.room(need)
	n, err := sr.src.Read(sr.buf[sr.w:])
	sr.w += n
	sr.full = sr.w == len(sr.buf) && sr.isSmall()
	// A deadline only interrupts this read; any other error ends the stream.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		sr.err = err
	}
	if n > 0 {
		return nil
	}
	return err
}

func (sr *streamReader) isSmall() bool {
	return len(sr.buf) > 0 && len(sr.small) > 0 && &sr.buf[0] == &sr.small[0]
}

// room makes the buffer able to take need bytes past sr.r and leaves room
// to read into, moving what is buffered to the front or to a larger buffer.
func (sr *streamReader) room(need int) {
	if sr.buf == nil {
		sr.buf, sr.full = sr.small[:], false
	}
	grow := need > len(sr.buf) || sr.isSmall() && sr.full
	if !grow && need <= len(sr.buf)-sr.r && sr.w < len(sr.buf) {
		return
	}
	if !grow {
		sr.w = copy(sr.buf, sr.buf[sr.r:sr.w])
		sr.r = 0
		return
	}
	nb, pooled := sr.larger(need)
	sr.w = copy(nb, sr.buf[sr.r:sr.w])
	sr.r = 0
	if sr.pooled {
		readBuffers.Put((*[channelReadBuffer]byte)(sr.buf))
	}
	sr.buf, sr.pooled = nb, pooled
}

// larger returns a buffer for need bytes larger than the current one, and
// whether it is from readBuffers.
func (sr *streamReader) larger(need int) ([]byte, bool) {
	size := max(need, sr.base, 2*len(sr.small))
	if !sr.isSmall() {
		size = max(need, 2*len(sr.buf))
	}
	if size == channelReadBuffer {
		return readBuffers.Get().(*[channelReadBuffer]byte)[:], true
	}
	return make([]byte, size), false
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
