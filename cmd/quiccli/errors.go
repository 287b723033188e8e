package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

// Exit statuses.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitConnect     = 3   // no answer, untrusted, wrong protocol, refused, gave up
	exitMissed      = 4   // listen: messages were missed (gap notices, or disconnected as a slow consumer)
	exitInterrupted = 130 // as shells report a process ended by SIGINT
)

// statusError carries the exit status for an error.
type statusError struct {
	code     int
	err      error
	reported bool // already printed
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return explain(exitUsage, nil, format, args...)
}

// reported marks a statusError as already printed.
func reported(err error) error {
	var ee *statusError
	if errors.As(err, &ee) {
		ee.reported = true
	}
	return err
}

func isReported(err error) bool {
	var ee *statusError
	return errors.As(err, &ee) && ee.reported
}

// exitCode returns the exit status for run's error.
func exitCode(err error) int {
	var ee *statusError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	return exitError
}

// humanError is an error whose message is written for a person; it still
// unwraps to the error it explains, for errors.Is and errors.As.
type humanError struct {
	msg string
	err error
}

func (e *humanError) Error() string { return e.msg }
func (e *humanError) Unwrap() error { return e.err }

// explain returns an error with exit status code and a message for a
// person (see humanize) that unwraps to err.
func explain(code int, err error, format string, args ...any) error {
	return &statusError{code: code, err: &humanError{msg: humanize(fmt.Sprintf(format, args...)), err: err}}
}

// interrupted is returned when ctx ended before a command finished.
func interrupted(err error, format string, args ...any) error {
	return explain(exitInterrupted, err, "interrupted: "+format, args...)
}

// describeDial turns an error from dialling g.addr into one a person
// understands, with exit status exitConnect.
func (g *globals) describeDial(ctx context.Context, err error) error {
	var pm *certs.PinMismatchError
	var te *quic.TransportError
	var ce *transport.ConnError
	switch {
	case ctx.Err() != nil:
		return interrupted(err, "while connecting to %s", g.addr)
	case errors.Is(err, transport.ErrProtocol):
		return explain(exitConnect, err, "the server at %s does not speak the quicmsg/1 protocol; is -addr the address of a quicsrv?", g.addr)
	case errors.Is(err, transport.ErrNoAnswer):
		return explain(exitConnect, err, "no answer from %s within %s; is quicsrv running?", g.addr, g.timeout)
	case errors.As(err, &pm):
		return explain(exitConnect, err, "the key of the server at %s has pin %s, not %s given with -pin; pass the pin quicsrv prints", g.addr, pm.Got, pm.Want)
	case errors.As(err, &te) && te.Remote && certAlert(te.ErrorCode):
		if g.certFile == "" {
			return explain(exitConnect, err, "the server at %s requires a client certificate (mutual TLS); pass -cert and -key", g.addr)
		}
		return explain(exitConnect, err, "the server at %s refused the client certificate %s; pass -cert and -key with a certificate signed by the server's client CA", g.addr, g.certFile)
	case errors.Is(err, transport.ErrUntrusted):
		return explain(exitConnect, err, "the certificate of the server at %s is not trusted by %s; pass -ca <file printed by quicsrv> (or -pin <pin printed by quicsrv>)", g.addr, g.trustedBy())
	case errors.As(err, &ce) && ce.Remote:
		return explain(exitConnect, err, "the server at %s refused the session: %s", g.addr, closeReason(ce))
	}
	return explain(exitConnect, err, "cannot connect to %s: %v", g.addr, err)
}

// certAlert reports whether code is a TLS alert about a certificate.
func certAlert(code quic.TransportErrorCode) bool {
	if !code.IsCryptoError() {
		return false
	}
	switch code - 0x100 {
	case 42, 43, 44, 45, 46, 48, 116: // bad, unsupported, revoked, expired, unknown certificate; unknown CA; certificate required
		return true
	}
	return false
}

func closeReason(ce *transport.ConnError) string {
	if ce.Reason == "" {
		return ce.Code.String()
	}
	return ce.Code.String() + ": " + ce.Reason
}

// describe turns an error from a command's work, once connected, into one a
// person understands.
func (g *globals) describe(err error) error {
	var tl *transport.MessageTooLargeError
	var ce *transport.ConnError
	var che *transport.ChannelError
	var ud *client.UndeliveredError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*statusError)):
		return err
	case errors.As(err, &tl):
		return explain(exitError, err, "a message of %d bytes is larger than the server's limit of %d bytes (quicsrv -max-message-size)", tl.Size, tl.Limit)
	case errors.Is(err, client.ErrGaveUp):
		return g.gaveUp(err)
	case errors.As(err, &ud):
		return explain(exitError, err, "%d messages were not delivered: the connection to %s was lost and not re-established in time", ud.Messages, g.addr)
	case errors.Is(err, transport.ErrUnflushed):
		return explain(exitError, err, "some messages could not be written within %s (-timeout): the server is not reading", g.timeout)
	case errors.Is(err, transport.ErrInDoubt):
		return explain(exitError, err, "the connection to %s ended before the server confirmed reading everything; messages written to it may or may not have arrived", g.addr)
	case errors.Is(err, transport.ErrHeadersUnsupported):
		return explain(exitError, err, "the server at %s does not support message headers, subjects or queue groups (it predates them); upgrade quicsrv", g.addr)
	case errors.As(err, &ce) && ce.Remote:
		return explain(exitError, err, "the server closed the connection: %s", closeReason(ce))
	case errors.As(err, &che) && che.Remote:
		msg := fmt.Sprintf("the server reset channel %q: %s", che.Channel, che.Code)
		if che.Reason != "" {
			msg += ": " + che.Reason
		}
		return explain(exitError, err, "%s", msg)
	}
	return explain(exitError, err, "%v", err)
}

// gaveUp explains client.ErrGaveUp in one line: how many attempts were
// made and why the last one failed.
func (g *globals) gaveUp(err error) error {
	var gu *client.GaveUpError
	if !errors.As(err, &gu) {
		return explain(exitConnect, err, "lost the connection to %s and gave up reconnecting (-retries %d)", g.addr, g.retries)
	}
	return explain(exitConnect, err, "lost the connection to %s and gave up after %d reconnect attempts (-retries); the last one failed: %s",
		g.addr, gu.Attempts, g.attemptFailure(gu.Attempts-1, gu.Last))
}

// oneLine returns err's message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
