package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
)

// rawSession is a raw quic-go connection of hold mode with -raw, against
// quicscale -mode serve-raw, and its one stream.
type rawSession struct {
	conn *quic.Conn
	s    *quic.Stream
}

func (s rawSession) echo(ctx context.Context, i int) error { return rawEcho(ctx, s.s, i) }
func (s rawSession) close()                                { _ = s.conn.CloseWithError(0, "") }

// connectRaw dials a raw quic-go connection on tr with the quic.Config
// quicmsg's transport would use, calls dialled, opens one stream and
// exchanges the first echo on it; it closes the connection if that fails.
func (h *holder) connectRaw(ctx context.Context, tr *quic.Transport, i int, dialled func()) (session, error) {
	c, err := tr.Dial(ctx, h.rawAddr, h.tlsConf, h.rawQUIC)
	if err != nil {
		return nil, err
	}
	dialled()
	s, err := c.OpenStreamSync(ctx)
	if err == nil {
		err = rawEcho(ctx, s, i)
	}
	if err != nil {
		_ = c.CloseWithError(0, "")
		return nil, err
	}
	return rawSession{conn: c, s: s}, nil
}

// rawEcho writes a 64-byte message naming session i on s and checks that
// the same comes back, within ctx.
func rawEcho(ctx context.Context, s *quic.Stream, i int) error {
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
		defer s.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = s.SetDeadline(time.Now()) })
	defer stop()
	msg := make([]byte, echoSize)
	binary.BigEndian.PutUint64(msg, uint64(i))
	if _, err := s.Write(msg); err != nil {
		return fmt.Errorf("echo: write: %w", err)
	}
	got := make([]byte, echoSize)
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("echo: read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %d bytes that are not the %d sent", len(got), len(msg))
	}
	return nil
}
