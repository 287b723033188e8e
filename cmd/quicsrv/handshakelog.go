package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// refusedLogPerSecond is how many refused handshakes are logged per
// second at most; the others are counted, and the next line logged says
// how many were left out ("suppressed").
const refusedLogPerSecond = 10

// refusedCloseWait bounds how long close waits for the connections still
// ending when the listener has closed.
const refusedCloseWait = 2 * time.Second

// TLS alerts (RFC 8446, 6) that name why this server refused a handshake.
const (
	alertBadCertificate         = 42
	alertUnsupportedCertificate = 43
	alertCertificateExpired     = 45
	alertUnknownCA              = 48
	alertCertificateRequired    = 116
	alertNoApplicationProtocol  = 120
)

// handshakeLog logs, at info, each QUIC handshake that this server's TLS
// refused (no client certificate under -client-ca, a certificate from
// another CA, a client that does not speak quicmsg), with the reason,
// at most refusedLogPerSecond lines a second. A flood of bad clients then
// costs a bounded number of lines, and none goes unaccounted: each line
// says how many were left out before it, and close logs those left out
// after the last line.
//
// It learns of a refusal from the connection's context, which quic-go
// ends with the TLS alert it sent: tracer registers a function for it on
// every connection the listener starts. The context package runs each on
// a goroutine of its own when the connection ends; handshakeLog owns them:
// close, called once the listener has closed, waits for them.
type handshakeLog struct {
	log *slog.Logger
	now func() time.Time // time.Now; tests set it

	mu         sync.Mutex
	window     time.Time     // start of the current second
	inWindow   int           // lines logged in it
	suppressed int           // refusals not logged since the last line
	total      uint64        // refusals since start
	pending    int           // connections whose end is not yet handled
	closing    bool          // close began: no more connections are watched
	closed     bool          // close reported what it left out: every refusal is logged
	idle       chan struct{} // closed when pending drops to 0 during close
}

func newHandshakeLog(log *slog.Logger) *handshakeLog {
	return &handshakeLog{log: log, now: time.Now}
}

// tracer returns a quic-go connection tracer that watches each server
// connection's end for a refused handshake and otherwise is next (nil:
// no trace, which costs quic-go nothing per packet).
func (h *handshakeLog) tracer(next func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace) func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	return func(ctx context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
		if !isClient && h.watch() {
			// The registration lives as long as the connection; the
			// function runs once, when it ends.
			context.AfterFunc(ctx, func() {
				defer h.unwatch()
				h.connEnded(context.Cause(ctx), odcid)
			})
		}
		if next == nil {
			return nil
		}
		return next(ctx, isClient, odcid)
	}
}

// watch counts a connection whose end is to be handled, unless close
// began.
func (h *handshakeLog) watch() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.pending++
	return true
}

// unwatch is watch's connection handled.
func (h *handshakeLog) unwatch() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending--; h.pending == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// connEnded logs cause if it is a TLS alert this server sent.
func (h *handshakeLog) connEnded(cause error, odcid quic.ConnectionID) {
	var te *quic.TransportError
	if !errors.As(cause, &te) || te.Remote || !te.ErrorCode.IsCryptoError() {
		return
	}
	alert := uint8(te.ErrorCode - 0x100)
	attrs := []any{"reason", refusalReason(alert), "tls_alert", tls.AlertError(alert).Error(), "conn_id", odcid.String()}
	if inner := tlsError(te); inner != nil {
		attrs = append(attrs, "err", inner.Error())
	}
	var cve *tls.CertificateVerificationError
	if errors.As(cause, &cve) && len(cve.UnverifiedCertificates) > 0 {
		c := cve.UnverifiedCertificates[0]
		attrs = append(attrs, "client_cert", c.Subject.String(), "client_cert_issuer", c.Issuer.String())
	}
	ok, suppressed, total := h.allow()
	if !ok {
		return
	}
	attrs = append(attrs, "suppressed", suppressed, "refused_total", total)
	h.log.Info("handshake refused", attrs...)
}

// tlsError returns the crypto/tls error that te wraps, or nil.
func tlsError(te *quic.TransportError) error {
	u, ok := any(te).(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	for _, err := range u.Unwrap() {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

// refusalReason says in words why the server sent alert.
func refusalReason(alert uint8) string {
	switch alert {
	case alertCertificateRequired:
		return "no client certificate"
	case alertBadCertificate, alertUnknownCA, alertUnsupportedCertificate, alertCertificateExpired:
		return "client certificate not trusted"
	case alertNoApplicationProtocol:
		return "client does not speak quicmsg/1"
	}
	return "TLS handshake failed"
}

// allow counts a refusal and reports whether it may be logged now, with
// the refusals left out since the last line and the total.
func (h *handshakeLog) allow() (ok bool, suppressed int, total uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total++
	if now := h.now(); now.Sub(h.window) >= time.Second {
		h.window, h.inWindow = now, 0
	}
	if h.inWindow >= refusedLogPerSecond && !h.closed {
		h.suppressed++
		return false, 0, h.total
	}
	h.inWindow++
	suppressed, h.suppressed = h.suppressed, 0
	return true, suppressed, h.total
}

// close waits, up to refusedCloseWait, for the connections still ending
// (the listener has closed them), then logs the refusals left out since
// the last line, if any. From then on every refusal is logged: one that
// comes later still is not left out unreported.
func (h *handshakeLog) close() {
	h.mu.Lock()
	h.closing = true
	var idle chan struct{}
	if h.pending > 0 {
		h.idle = make(chan struct{})
		idle = h.idle
	}
	h.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(refusedCloseWait)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}
	h.mu.Lock()
	suppressed, total, pending := h.suppressed, h.total, h.pending
	h.suppressed, h.closed = 0, true
	h.mu.Unlock()
	if suppressed > 0 {
		h.log.Info("handshakes refused and not logged (rate limit)", "suppressed", suppressed, "refused_total", total)
	}
	if pending > 0 {
		h.log.Warn("connections still ending at exit: refusals among them are logged as they come", "connections", pending)
	}
}
