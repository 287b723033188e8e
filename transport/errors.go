package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// ErrorCode is a quicmsg application error code, carried in QUIC
// CONNECTION_CLOSE frames, stream resets and GOAWAY. The table is in
// PROTOCOL.md.
//
// An ErrorCode is itself an error, so callers can test any error returned by
// this package with errors.Is(err, transport.CodeOverloaded).
type ErrorCode uint64

// Application error codes.
const (
	CodeNoError          ErrorCode = 0x00 // graceful close
	CodeProtocolError    ErrorCode = 0x01 // the peer violated the wire protocol
	CodeInternalError    ErrorCode = 0x02 // a local failure unrelated to the peer
	CodeMessageTooLarge  ErrorCode = 0x03 // a message frame exceeded the receiver's limit
	CodeOverloaded       ErrorCode = 0x04 // the sender kept pushing past the receiver's cap
	CodeGoingAway        ErrorCode = 0x05 // the endpoint is shutting down
	CodeTooManySessions  ErrorCode = 0x06 // the server is at its session limit
	CodeChannelClosed    ErrorCode = 0x07 // the application closed the channel
	CodeVersionMismatch  ErrorCode = 0x08 // no common protocol version
	CodeDisconnected     ErrorCode = 0x09 // the server's operator disconnected the session
	CodeDuplicateChannel ErrorCode = 0x0a // a channel of that name is already open
	CodeSlowConsumer     ErrorCode = 0x0b // the receiver fell too far behind
	CodeResumeExpired    ErrorCode = 0x0c // no such session to resume (ErrResumeExpired)
	CodeResumeInvalid    ErrorCode = 0x0d // the resume token's MAC is wrong (ErrResumeTokenInvalid)
	CodeResumeReplayed   ErrorCode = 0x0e // the resume token was used before (ErrResumeTokenReplayed)
	CodeSessionAttached  ErrorCode = 0x0f // the session has another connection (ErrSessionAttached)
	CodeResumeClaim      ErrorCode = 0x10 // the peer's resume state is impossible (ErrResumeClaim)
	CodeInvalidSubject   ErrorCode = 0x11 // a channel's subject or pattern was refused
)

var codeNames = map[ErrorCode]string{
	CodeNoError:          "no error",
	CodeProtocolError:    "protocol error",
	CodeInternalError:    "internal error",
	CodeMessageTooLarge:  "message too large",
	CodeOverloaded:       "overloaded",
	CodeGoingAway:        "going away",
	CodeTooManySessions:  "too many sessions",
	CodeChannelClosed:    "channel closed",
	CodeVersionMismatch:  "version mismatch",
	CodeDisconnected:     "disconnected",
	CodeDuplicateChannel: "duplicate channel",
	CodeSlowConsumer:     "slow consumer",
	CodeResumeExpired:    "resume expired",
	CodeResumeInvalid:    "resume invalid",
	CodeResumeReplayed:   "resume replayed",
	CodeSessionAttached:  "session attached",
	CodeResumeClaim:      "resume claim",
	CodeInvalidSubject:   "invalid subject",
}

// String returns the code's name and value, for example "overloaded (0x4)".
func (c ErrorCode) String() string {
	if n, ok := codeNames[c]; ok {
		return fmt.Sprintf("%s (0x%x)", n, uint64(c))
	}
	return fmt.Sprintf("unknown code (0x%x)", uint64(c))
}

// Error makes an ErrorCode usable as a target of errors.Is.
func (c ErrorCode) Error() string { return "transport: " + c.String() }

// Sentinel errors for conditions callers test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Listener, Conn or
	// Channel. It matches net.ErrClosed.
	ErrClosed = fmt.Errorf("transport: use of closed connection or channel: %w", net.ErrClosed)
	// ErrAcceptInUse is returned by Conn.ServeChannels, and by
	// Conn.AcceptChannel after it, when the connection's channels are
	// already taken by the other of the two.
	ErrAcceptInUse = errors.New("transport: the peer's channels are already taken by ServeChannels or AcceptChannel: use one of them per connection")
	// ErrSlowDown is returned by TrySend while the peer has asked this side
	// to slow down.
	ErrSlowDown = errors.New("transport: peer asked to slow down")
	// ErrWouldBlock is returned by TrySend when the channel's send buffer is
	// full.
	ErrWouldBlock = errors.New("transport: send buffer full")
	// ErrInvalidName is returned for a channel name that is empty, longer
	// than 255 bytes or not UTF-8.
	ErrInvalidName = errors.New("transport: invalid channel name")
	// ErrProtocol is wrapped by errors caused by a peer that does not speak
	// quicmsg/1 (wrong ALPN, bad HELLO).
	ErrProtocol = errors.New("transport: protocol mismatch")
	// ErrEarlyDataRejected ends a connection from DialEarly whose 0-RTT data
	// the server refused (for example after it restarted with new session
	// ticket keys). Nothing sent in 0-RTT was processed: Channel.Unsent
	// returns it, so that it can be sent again on a new connection.
	ErrEarlyDataRejected = errors.New("transport: server rejected 0-RTT data")
	// ErrUnflushed is wrapped by Close when messages accepted by Send could
	// not be written before the close timeout.
	ErrUnflushed = errors.New("transport: messages not written before close timeout")
	// ErrInDoubt is wrapped by Conn.Close when the connection ended before
	// the peer confirmed that it had read everything: messages written to it
	// may or may not have been processed (Channel.InDoubt counts them).
	ErrInDoubt = errors.New("transport: written messages in doubt")
)

// ConnError reports that a connection ended with an application error code,
// sent by the peer (Remote) or by this side.
type ConnError struct {
	Code   ErrorCode
	Reason string
	Remote bool
}

func (e *ConnError) Error() string {
	who := closedBy(e.Remote)
	if e.Reason == "" {
		return fmt.Sprintf("transport: connection closed %s: %s", who, e.Code.String())
	}
	return fmt.Sprintf("transport: connection closed %s: %s: %s", who, e.Code.String(), e.Reason)
}

// Is matches the error's code and net.ErrClosed.
func (e *ConnError) Is(target error) bool {
	if c, ok := target.(ErrorCode); ok {
		return c == e.Code
	}
	return target == net.ErrClosed
}

// closedBy says which side ended a connection or channel.
func closedBy(remote bool) string {
	if remote {
		return "by peer"
	}
	return "locally"
}

// ChannelError reports that a channel's stream was reset with an application
// error code. The connection and its other channels are unaffected.
type ChannelError struct {
	Channel string
	Code    ErrorCode
	Remote  bool
	Reason  string
}

func (e *ChannelError) Error() string {
	s := fmt.Sprintf("transport: channel %q reset %s: %s", e.Channel, closedBy(e.Remote), e.Code.String())
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is matches the error's code.
func (e *ChannelError) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// MessageTooLargeError is returned by Send for a message longer than the
// peer's limit. Nothing is sent and the channel stays usable.
type MessageTooLargeError struct {
	Channel string
	Size    int
	Limit   int
}

func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("transport: message of %d bytes on channel %q exceeds the peer's limit of %d bytes", e.Size, e.Channel, e.Limit)
}

// Is matches CodeMessageTooLarge.
func (e *MessageTooLargeError) Is(target error) bool { return target == CodeMessageTooLarge }

// convertConnErr turns quic-go's connection errors into this package's.
func convertConnErr(err error) error {
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok {
		return &ConnError{Code: ErrorCode(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote}
	}
	return err
}

// TLS alerts as QUIC transport errors (0x100 + alert).
const (
	tlsAlertBadCertificate      = 0x100 + 42
	tlsAlertUnknownCA           = 0x100 + 48
	tlsAlertCertificateRequired = 0x100 + 116
	tlsAlertNoALPN              = 0x100 + 120
)

// ErrUntrusted is wrapped by Dial errors when TLS certificate verification
// failed, on either side.
var ErrUntrusted = errors.New("transport: certificate not trusted")

// ErrNoAnswer is wrapped by Dial errors when the server did not answer in time.
var ErrNoAnswer = errors.New("transport: no answer from server")

// DialError reports why Dial failed. Kind is one of ErrNoAnswer,
// ErrUntrusted or ErrProtocol when the fault is one of those, and matches
// with errors.Is; Err is the underlying error. For ErrNoAnswer, Reason names
// the deadline that fired: the dial context's, Config.HandshakeTimeout, or
// the dial's overall bound of twice that.
type DialError struct {
	Addr   string
	Reason string // what a person should know, e.g. "no answer within 5s, the handshake timeout (is the server running?)"
	Kind   error
	Err    error
}

func (e *DialError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("transport: dial %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("transport: dial %s: %s: %v", e.Addr, e.Reason, e.Err)
}

// Unwrap returns Kind and Err.
func (e *DialError) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// dialBounds are the deadlines that bound a dial, so that a failure names
// the one that fired.
type dialBounds struct {
	addr      string
	handshake time.Duration // Config.HandshakeTimeout: QUIC handshake idle timeout, HELLO wait
	start     time.Time     // when the dial began; zero outside a dial (WaitReady)
	deadline  time.Time     // the caller's context's deadline; zero if it has none
}

func newDialBounds(ctx context.Context, addr string, handshake time.Duration) dialBounds {
	b := dialBounds{addr: addr, handshake: handshake, start: time.Now()}
	b.deadline, _ = ctx.Deadline()
	return b
}

// overall is the dial's own bound on the QUIC handshake plus the HELLO
// exchange: twice the handshake timeout, as quic-go caps a whole handshake
// at twice its idle timeout.
func (b dialBounds) overall() time.Duration { return 2 * b.handshake }

// noAnswer says which deadline ended a dial that timed out: the caller's
// context's, the dial's overall bound, or the handshake timeout.
func (b dialBounds) noAnswer(err error) string {
	now := time.Now()
	switch {
	case !b.deadline.IsZero() && !now.Before(b.deadline):
		return fmt.Sprintf("no answer within %s, the dial context's deadline (is the server running?)", b.deadline.Sub(b.start).Round(time.Millisecond))
	case !b.start.IsZero() && !now.Before(b.start.Add(b.overall())):
		return fmt.Sprintf("no answer within %s, twice the handshake timeout (is the server running?)", b.overall())
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no HELLO within %s, the handshake timeout (does the server speak %s?)", b.handshake, alpn)
	default:
		return fmt.Sprintf("no answer within %s, the handshake timeout (is the server running?)", b.handshake)
	}
}

func dialError(b dialBounds, err error) error {
	de := &DialError{Addr: b.addr, Err: convertConnErr(err)}
	var ce *ConnError
	if errors.As(de.Err, &ce) && ce.Remote {
		de.Reason = "the server refused the session"
	}
	switch reason, kind := tlsFault(err); {
	case errors.Is(err, ErrProtocol):
		de.Kind = ErrProtocol
	case kind != nil:
		de.Reason, de.Kind = reason, kind
	case isTimeout(err):
		de.Reason, de.Kind = b.noAnswer(err), ErrNoAnswer
	}
	return de
}

// tlsFault says what a TLS failure of a dial means to a person, and its
// kind (ErrProtocol or ErrUntrusted); kind is nil for other errors.
func tlsFault(err error) (reason string, kind error) {
	var te *quic.TransportError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &te) && te.ErrorCode == tlsAlertNoALPN:
		return "the server does not speak " + alpn, ErrProtocol
	case errors.As(err, &te) && (te.ErrorCode == tlsAlertBadCertificate || te.ErrorCode == tlsAlertUnknownCA || te.ErrorCode == tlsAlertCertificateRequired):
		if !te.Remote {
			return "the server's certificate is not trusted", ErrUntrusted
		}
		return "the server rejected this client's certificate", ErrUntrusted
	case errors.As(err, &ce):
		return "the server's certificate is not trusted", ErrUntrusted
	}
	return "", nil
}

// isTimeout reports whether err is one of the timeouts that can end a dial.
func isTimeout(err error) bool {
	var ht *quic.HandshakeTimeoutError
	var it *quic.IdleTimeoutError
	return errors.As(err, &ht) || errors.As(err, &it) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}
