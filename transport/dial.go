package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// Dial connects to a quicmsg server at addr ("host:port"), completes the TLS
// 1.3 handshake (verifying the server's certificate as tlsConf says) and the
// HELLO exchange, and returns the connection. ctx bounds only the dial; the
// connection lives until it is closed. cfg may be nil for the defaults.
//
// Errors name the fault: a server that does not answer, a certificate that is
// not trusted, a server that does not speak quicmsg/1 (wrapping ErrProtocol),
// or a [*ConnError] when the server refused the session. With
// Config.Resume, a server that refuses to resume the session makes Dial
// return a [*ResumeError] (not wrapped in a DialError) that wraps the
// reason: ErrResumeExpired, ErrResumeTokenInvalid, ErrResumeTokenReplayed
// or ErrSessionAttached; on success [Conn.Resumed] is true.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	return dial(ctx, nil, addr, tlsConf, cfg)
}

// DialTransport is Dial over a caller-owned [quic.Transport], so that many
// connections can share one UDP socket. The caller closes the transport
// after the connections made with it.
func DialTransport(ctx context.Context, tr *quic.Transport, addr string, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	if tr == nil {
		return nil, errors.New("transport: DialTransport needs a *quic.Transport")
	}
	return dial(ctx, tr, addr, tlsConf, cfg)
}

// DialEarly is Dial for 0-RTT resumption. With a session ticket from an
// earlier connection to the same server (tlsConf.ClientSessionCache must be
// set, ServerName the same), it returns before the handshake completes, and
// the channels named in channels are open at once: messages sent on them
// with Channel.SendReplaySafe travel in the very first flight. Get them with
// [Conn.EarlyChannels]. Channel.Send waits for the handshake, so that a
// message not marked safe to replay never travels in 0-RTT data. Without a
// ticket DialEarly returns once the handshake completes. Either way it does
// not wait for the server's HELLO: [Conn.Ready] says when the session ID is
// known, and until then Send assumes the default message size limit.
//
// Channels opened later with OpenChannel wait for the handshake to complete
// when it has not yet: quic-go v0.65 races when a stream is created while
// the server's transport parameters are installed (quic-go issue 4303), so
// early streams are only created during the dial. DialEarly holds the
// server's first packets until they exist; DialTransportEarly, over a
// caller's transport, cannot, and relies on the streams being opened
// before the server's answer arrives.
//
// If the server rejects the 0-RTT data, the connection ends with
// ErrEarlyDataRejected and [Channel.Unsent] returns what must be sent again.
//
// With Config.Resume, a refusal comes after DialEarly returned: the
// connection ends with a [*ResumeError] as its Context's cause, which
// [Conn.WaitReady] returns.
func DialEarly(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config, channels ...string) (*Conn, error) {
	return dialConn(ctx, nil, addr, tlsConf, cfg, true, channels)
}

// DialTransportEarly is DialEarly over a caller-owned [quic.Transport].
func DialTransportEarly(ctx context.Context, tr *quic.Transport, addr string, tlsConf *tls.Config, cfg *Config, channels ...string) (*Conn, error) {
	if tr == nil {
		return nil, errors.New("transport: DialTransportEarly needs a *quic.Transport")
	}
	return dialConn(ctx, tr, addr, tlsConf, cfg, true, channels)
}

func dial(ctx context.Context, tr *quic.Transport, addr string, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	return dialConn(ctx, tr, addr, tlsConf, cfg, false, nil)
}

func dialConn(ctx context.Context, tr *quic.Transport, addr string, tlsConf *tls.Config, cfg *Config, early bool, channels []string) (*Conn, error) {
	conf, tc, err := dialSetup(addr, tlsConf, cfg, channels)
	if err != nil {
		return nil, err
	}
	b := newDialBounds(ctx, addr, conf.HandshakeTimeout)
	ctx, cancel := context.WithTimeout(ctx, b.overall())
	defer cancel()
	qc, release, err := dialQUIC(ctx, tr, addr, tc, conf.quicConfig(), early)
	if err != nil {
		return nil, dialFailure(b, conf.Resume, err)
	}
	// The early streams exist once the control stream and the channels
	// are open: the server's first flight may be processed from then on.
	defer release()
	handshake := clientHandshake
	if early {
		handshake = clientHandshakeEarly
	}
	c, err := handshake(ctx, qc, conf)
	if err != nil {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), "handshake failed")
		return nil, dialFailure(b, conf.Resume, err)
	}
	for _, name := range channels {
		ch, err := c.openChannel(ctx, name, ChannelOptions{}, false)
		if err != nil {
			_ = c.CloseWithError(CodeInternalError, "")
			return nil, fmt.Errorf("transport: dial %s: opening channel %q: %w", addr, name, err)
		}
		r := c.rareState()
		r.early = append(r.early, ch)
	}
	return c, nil
}

// dialFailure is the error of a dial that failed with err: the
// [*ResumeError] of a refused Config.Resume, else a [*DialError].
func dialFailure(b dialBounds, resume *ResumeToken, err error) error {
	if re := resumeFailure(resume, err); re != nil {
		return re
	}
	return dialError(b, err)
}

// dialSetup checks a dial's arguments and returns the configuration with
// defaults and the TLS configuration to dial with.
func dialSetup(addr string, tlsConf *tls.Config, cfg *Config, channels []string) (Config, *tls.Config, error) {
	conf, err := cfg.withDefaults()
	if err != nil {
		return Config{}, nil, err
	}
	if err := conf.validateResume(); err != nil {
		return Config{}, nil, err
	}
	for _, name := range channels {
		if err := wire.ValidateName(name); err != nil {
			return Config{}, nil, fmt.Errorf("%w: %w", ErrInvalidName, err)
		}
	}
	tc, err := clientTLS(tlsConf)
	if err != nil {
		return Config{}, nil, err
	}
	if tc.ServerName == "" {
		// The name to verify the server's certificate against, and to send
		// as SNI, is the host dialled, as quic.DialAddr and crypto/tls do.
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	return conf, tc, nil
}

// dialQUIC makes the QUIC connection, over tr if it is not nil. For an
// early dial of its own it returns the gate's release, to be called once
// the early streams are open (see earlygate.go); otherwise a no-op.
func dialQUIC(ctx context.Context, tr *quic.Transport, addr string, tc *tls.Config, qconf *quic.Config, early bool) (*quic.Conn, func(), error) {
	noop := func() {}
	switch {
	case tr == nil && early:
		qc, g, err := dialEarlyGated(ctx, addr, tc, qconf)
		if err != nil {
			return nil, noop, err
		}
		return qc, g.release, nil
	case tr == nil:
		qc, err := dialOwnSocket(ctx, addr, tc, qconf)
		return qc, noop, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, noop, err
	}
	var qc *quic.Conn
	if early {
		qc, err = tr.DialEarly(ctx, ua, tc, qconf)
	} else {
		qc, err = tr.Dial(ctx, ua, tc, qconf)
	}
	return qc, noop, err
}

// dialOwnSocket dials over a socket and quic.Transport of its own, which
// close with the connection, as quic.DialAddr does. Unlike quic.DialAddr's,
// the transport gives the connection non-empty connection IDs, without
// which it could not move to another socket (Conn.Migrate): a socket with
// empty ones can carry only one connection, and quic-go requires them.
func dialOwnSocket(ctx context.Context, addr string, tc *tls.Config, qconf *quic.Config) (*quic.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero, Port: 0})
	if err != nil {
		return nil, err
	}
	s := &ownedSocket{tr: &quic.Transport{Conn: udp}, udp: udp}
	qc, err := s.tr.Dial(ctx, ua, tc, qconf)
	if err != nil {
		s.close()
		return nil, err
	}
	context.AfterFunc(qc.Context(), s.close)
	return qc, nil
}
