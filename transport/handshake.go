package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// serverTLS and clientTLS return copies of c that negotiate quicmsg/1 over
// TLS 1.3 and nothing else.
func serverTLS(c *tls.Config) (*tls.Config, error) {
	if c == nil {
		return nil, errors.New("transport: a *tls.Config with a server certificate is required")
	}
	return forceTLS13(c)
}

func clientTLS(c *tls.Config) (*tls.Config, error) {
	if c == nil {
		return nil, errors.New("transport: a *tls.Config is required (see package certs)")
	}
	return forceTLS13(c)
}

func forceTLS13(c *tls.Config) (*tls.Config, error) {
	if c.MaxVersion != 0 && c.MaxVersion < tls.VersionTLS13 {
		return nil, fmt.Errorf("transport: tls.Config.MaxVersion 0x%04x is below TLS 1.3, which QUIC requires", c.MaxVersion)
	}
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{alpn}
	return c, nil
}

// readControlFrame reads one control frame, honouring the stream's deadline.
func readControlFrame(sr *streamReader) (wire.Control, error) {
	var f wire.Control
	err := readControlInto(sr, &f)
	return f, err
}

// readControlInto reads one control frame into *f, as readControlFrame,
// without a copy of the frame on its stack (readControl waits under it
// when a frame arrives in parts).
func readControlInto(sr *streamReader, f *wire.Control) error {
	for {
		b := sr.buffered()
		n, err := wire.ParseControlInto(b, f)
		if err == nil {
			sr.consume(n)
			return nil
		}
		if !errors.Is(err, wire.ErrShort) {
			return err
		}
		if err := sr.fill(len(b) + 1); err != nil {
			return err
		}
	}
}

// localHello is this side's HELLO: the limits of cfg.advertised(), which
// Listener.Limits reports, and for a server the session ID.
func localHello(cfg *Config, id []byte) wire.Control {
	adv := cfg.advertised()
	return wire.Control{Type: wire.ControlHello, Hello: wire.Hello{
		Version:        wire.Version,
		SessionID:      id,
		MaxMessageSize: uint64(adv.MaxMessageSize),
		PendingCap:     uint64(adv.PendingCap),
		PendingBytes:   uint64(adv.PendingBytes),
		SendBuffer:     uint64(adv.SendBufferSize),
		Acks:           !cfg.DisableAcks,
		Headers:        !cfg.noHeaders,
		Ping:           !cfg.noPing,
		Mode:           cfg.Mode,
	}}
}

func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

// sendHello opens the client's control stream and writes its HELLO.
func sendHello(ctx context.Context, qc *quic.Conn, cfg *Config) (*quic.Stream, error) {
	ctrl, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	b := wire.AppendControl([]byte{wire.StreamControl}, clientHello(cfg))
	if _, err := ctrl.Write(b); err != nil {
		return nil, err
	}
	return ctrl, nil
}

// clientHandshake opens the control stream, sends the client's HELLO and
// waits for the server's.
func clientHandshake(ctx context.Context, qc *quic.Conn, cfg Config) (*Conn, error) {
	ctrl, err := sendHello(ctx, qc, &cfg)
	if err != nil {
		return nil, err
	}
	_ = ctrl.SetReadDeadline(deadlineOf(ctx, cfg.HandshakeTimeout))
	sr := newControlReader(ctrl)
	f, err := readControlFrame(sr)
	if err != nil {
		var me *wire.MalformedError
		if errors.As(err, &me) {
			_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), err.Error())
			return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return nil, err
	}
	_ = ctrl.SetReadDeadline(time.Time{})
	if f.Type != wire.ControlHello || len(f.Hello.SessionID) != len(SessionID{}) {
		reason := fmt.Sprintf("expected the server's HELLO with a %d-byte session ID, got %s", len(SessionID{}), f.Type)
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), reason)
		return nil, fmt.Errorf("%w: %s", ErrProtocol, reason)
	}
	if f.Hello.Version != wire.Version {
		reason := fmt.Sprintf("server speaks version %d, this client version %d", f.Hello.Version, wire.Version)
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeVersionMismatch), reason)
		return nil, fmt.Errorf("%w: %s", ErrProtocol, reason)
	}
	res, err := clientResume(&cfg, &f.Hello)
	if err != nil {
		return nil, rejectServerHello(qc, err)
	}
	c := newConn(qc, ctrl, cfg, true, SessionID(f.Hello.SessionID), &f.Hello, res)
	go c.readControl(sr)
	return c, nil
}

// clientHandshakeEarly opens the control stream and sends the client's HELLO
// without waiting for the server's, which the control reader takes later.
func clientHandshakeEarly(ctx context.Context, qc *quic.Conn, cfg Config) (*Conn, error) {
	ctrl, err := sendHello(ctx, qc, &cfg)
	if err != nil {
		return nil, err
	}
	c := newConn(qc, ctrl, cfg, true, SessionID{}, nil, resumeInfo{})
	go c.readControl(newControlReader(ctrl))
	return c, nil
}

// serverHandshake accepts the control stream, reads the client's HELLO and
// answers with the session ID and the server's limits: a new session, or
// the one a client's resume token names (see serverSession; a refusal is a
// *ResumeError, closed with its own code). answer runs right before the
// server's HELLO is written: an error from it refuses the connection with
// CodeGoingAway instead (see Listener.Drain). On failure it closes
// the QUIC connection with a code that says why, unless ctx ended: then it
// returns the cause and leaves the close to whoever ended ctx.
func serverHandshake(ctx context.Context, qc *quic.Conn, cfg Config, answer func() error) (*Conn, error) {
	fail := func(code ErrorCode, err error) (*Conn, error) {
		if ctx.Err() != nil {
			// Whoever ended ctx closes the connection, with its own code.
			return nil, context.Cause(ctx)
		}
		code, reason := handshakeFailure(code, err)
		_ = qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
		return nil, err
	}
	ctrl, err := qc.AcceptStream(ctx)
	if err != nil {
		return fail(CodeProtocolError, fmt.Errorf("no control stream: %w", err))
	}
	_ = ctrl.SetReadDeadline(deadlineOf(ctx, cfg.HandshakeTimeout))
	sr := newControlReader(ctrl)
	if err := sr.fill(1); err != nil {
		return fail(CodeProtocolError, fmt.Errorf("no HELLO: %w", err))
	}
	if t := sr.buffered()[0]; t != wire.StreamControl {
		return fail(CodeProtocolError, fmt.Errorf("first stream has type 0x%02x, want the control stream", t))
	}
	sr.consume(1)
	f, err := readControlFrame(sr)
	if err != nil {
		return fail(CodeProtocolError, fmt.Errorf("reading HELLO: %w", err))
	}
	if f.Type != wire.ControlHello {
		return fail(CodeProtocolError, fmt.Errorf("expected HELLO, got %s", f.Type))
	}
	if f.Hello.Version != wire.Version {
		return fail(CodeVersionMismatch, fmt.Errorf("client speaks version %d, this server version %d", f.Hello.Version, wire.Version))
	}
	_ = ctrl.SetReadDeadline(time.Time{})
	// Refused while draining before a resume is decided, so that OnResume
	// never accepts a resume the listener then refuses.
	if err := answer(); err != nil {
		return fail(CodeGoingAway, err)
	}
	id, res, err := serverSession(ctx, qc, &cfg, &f.Hello)
	if err != nil {
		return fail(CodeProtocolError, err)
	}
	hello := localHello(&cfg, id[:])
	hello.Hello.ResumeToken = res.token
	if _, err := ctrl.Write(wire.AppendControl(nil, hello)); err != nil {
		return fail(CodeInternalError, fmt.Errorf("writing HELLO: %w", err))
	}
	c := newConn(qc, ctrl, cfg, false, id, &f.Hello, res)
	// A goroutine of its own rather than this one, whose stack the HELLO's
	// parse has grown: an idle session would keep that stack.
	go c.readControl(sr)
	return c, nil
}
