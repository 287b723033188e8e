package transport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// ResumeKey authenticates resume tokens (HMAC-SHA256). Keep it across
// restarts, like the TLS session ticket keys, so that a client of a
// restarted server is told its session is gone (ErrResumeExpired) rather
// than that its token is forged (ErrResumeTokenInvalid): sessions
// themselves do not survive a restart, their state is in memory.
type ResumeKey [32]byte

// ResumeToken is what a client needs to resume its session: the session
// ID and the opaque token the server issued in its HELLO.
type ResumeToken struct {
	ID    SessionID
	Token []byte // 1 to 64 bytes, as the server issued it
}

// ResumeRequest is a client's resume attempt whose token the Listener
// authenticated: Config.OnResume decides it.
type ResumeRequest struct {
	ID         SessionID
	Generation uint64 // the token's generation: 0 for the token issued with the session, +1 per resume
	RemoteAddr net.Addr
}

// Resume refusals, wrapped in a [*ResumeError]. The server closes the
// connection with the matching code (CodeResumeExpired, CodeResumeInvalid,
// CodeResumeReplayed, CodeSessionAttached) right after the client's HELLO;
// ErrResumeClaim goes with CodeResumeClaim, from [Conn.RejectResume].
var (
	ErrResumeExpired       = errors.New("transport: no such session to resume: its resume window passed or the server restarted")
	ErrResumeTokenInvalid  = errors.New("transport: resume token not valid for this session: wrong MAC (forged, another session's, or issued under another key)")
	ErrResumeTokenReplayed = errors.New("transport: resume token already used: a later token was issued to the session")
	ErrSessionAttached     = errors.New("transport: session is attached to another connection")
	ErrResumeClaim         = errors.New("transport: resume state claims messages that were never sent")
)

// resumeRefusals pairs each refusal with its error code.
var resumeRefusals = [...]struct {
	err  error
	code ErrorCode
}{
	{ErrResumeExpired, CodeResumeExpired},
	{ErrResumeTokenInvalid, CodeResumeInvalid},
	{ErrResumeTokenReplayed, CodeResumeReplayed},
	{ErrSessionAttached, CodeSessionAttached},
	{ErrResumeClaim, CodeResumeClaim},
}

// ResumeError is a refused resume. Dial, DialTransport and
// [Conn.WaitReady] (after DialEarly) with Config.Resume return it when the
// server refuses the session (the connection is closed), and so does
// context.Cause of the connection's Context. A side whose peer finds its
// resume state impossible ([Conn.RejectResume]) sees one wrapping
// ErrResumeClaim, with the peer's reason in Detail, as the cause of its
// connection's end: context.Cause(conn.Context()), and the error of every
// operation that fails because of it.
//
// Err is one of the ErrResume* sentinels or ErrSessionAttached, which
// errors.Is matches through it; errors.Is also matches the refusal's
// [ErrorCode] and net.ErrClosed.
type ResumeError struct {
	ID     SessionID
	Err    error  // one of the refusal sentinels above
	Detail string // what exactly, e.g. the channel and counts of a bad claim; may be empty
}

// Error says which session was refused and why, for example "transport:
// resume of session 3f…e1 refused: resume token already used: a later
// token was issued to the session".
func (e *ResumeError) Error() string {
	return "transport: resume of session " + e.ID.String() + " refused: " + e.reason()
}

// Unwrap returns Err.
func (e *ResumeError) Unwrap() error { return e.Err }

// Is matches the refusal's error code and net.ErrClosed: a refused resume
// always ends its connection.
func (e *ResumeError) Is(target error) bool {
	if c, ok := target.(ErrorCode); ok {
		return c == e.code()
	}
	return target == net.ErrClosed
}

// code is the error code that carries e's refusal.
func (e *ResumeError) code() ErrorCode {
	for _, r := range resumeRefusals {
		if errors.Is(e.Err, r.err) {
			return r.code
		}
	}
	return CodeResumeExpired
}

// reason is the refusal as the close reason carries it: the sentinel's
// text, then the detail.
func (e *ResumeError) reason() string {
	s := refusalText(e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func refusalText(err error) string {
	if err == nil {
		err = ErrResumeExpired
	}
	return strings.TrimPrefix(err.Error(), "transport: ")
}

// remoteRefusal turns the peer's close ce, if its code is a refusal's,
// into a *ResumeError for session id: the close reason, less the
// refusal's own text, becomes the detail. Otherwise it returns nil.
func remoteRefusal(id SessionID, ce *ConnError) *ResumeError {
	for _, r := range resumeRefusals {
		if r.code != ce.Code {
			continue
		}
		text := refusalText(r.err)
		detail := ce.Reason
		if strings.HasPrefix(detail, text) {
			detail = strings.TrimPrefix(detail[len(text):], ": ")
		}
		return &ResumeError{ID: id, Err: r.err, Detail: detail}
	}
	return nil
}

// peerClose returns err as a *ConnError if it is the peer's close of the
// connection with a code that may carry a refusal.
func peerClose(err error) (*ConnError, bool) {
	ce, ok := errors.AsType[*ConnError](err)
	ok = ok && ce.Remote && ce.Code >= CodeResumeExpired && ce.Code <= CodeResumeClaim
	return ce, ok
}

// resumeFailure is what a dial with Config.Resume returns for err: the
// *ResumeError if the server refused the session, else nil.
func resumeFailure(resume *ResumeToken, err error) *ResumeError {
	var re *ResumeError
	if errors.As(err, &re) {
		return re
	}
	if ce, ok := peerClose(convertConnErr(err)); ok && resume != nil && ce.Code != CodeResumeClaim {
		return remoteRefusal(resume.ID, ce)
	}
	return nil
}

// connErr is convertConnErr for this connection: the peer's close with a
// refusal code becomes a *ResumeError, on a client that asked to resume
// (codes 0x0c to 0x0f: before the server's HELLO, or after it and before
// the server's RESUME_STATE, when the server could not hand the
// connection to the session after all), and on a resumed connection
// (CodeResumeClaim).
func (c *Conn) connErr(err error) error {
	err = convertConnErr(err)
	ce, ok := peerClose(err)
	resumed := ok && c.Resumed()
	switch {
	case !ok:
	case ce.Code == CodeResumeClaim && resumed:
		return remoteRefusal(c.id, ce)
	case ce.Code != CodeResumeClaim && c.isClient && c.cfg.Resume != nil && (!resumed || !c.rs.complete()):
		return remoteRefusal(c.cfg.Resume.ID, ce)
	}
	return err
}

// resumeInfo is what the HELLO exchange decided about resumption. It is
// written before Conn.ready is closed and only read after.
type resumeInfo struct {
	resumed bool   // the connection resumed an earlier session
	gen     uint64 // server: the generation of the token issued
	token   []byte // the token the server issued on this connection; nil if none
}

// Resumed reports whether the HELLO exchange resumed an earlier session
// (SessionID is then the earlier session's). Before [Conn.Ready] is
// closed, false.
func (c *Conn) Resumed() bool {
	select {
	case <-c.ready:
		return c.res.resumed
	default:
		return false
	}
}

// ResumeToken returns the token to resume this connection's session with:
// the one the server issued in its HELLO on this connection (on a server's
// connection, the one it issued). It returns false if none was issued
// (acknowledgements off on either side, a server that resumes no sessions
// (no Config.OnResume), or one that predates resumption) or before
// [Conn.Ready] is closed. The token is a copy.
func (c *Conn) ResumeToken() (ResumeToken, bool) {
	select {
	case <-c.ready:
	default:
		return ResumeToken{}, false
	}
	if c.res.token == nil {
		return ResumeToken{}, false
	}
	return ResumeToken{ID: c.id, Token: append([]byte(nil), c.res.token...)}, true
}

// ResumeGeneration returns, on a server's connection, the generation of
// the token issued on it: 0 for a new session, the presented token's
// generation + 1 for a resumed one. It is 0 on a client's connection,
// to which tokens are opaque.
func (c *Conn) ResumeGeneration() uint64 {
	select {
	case <-c.ready:
		return c.res.gen
	default:
		return 0
	}
}

// resumeMACLen is the length of a token's truncated HMAC-SHA256.
const resumeMACLen = 16

// resumeMACLabel separates resume token MACs from any other use of the key.
const resumeMACLabel = "quicmsg resume v1"

// token returns the resume token of generation gen for session id:
// Generation (i) || HMAC-SHA256(k, label || id || gen as 8 bytes)[:16].
func (k *ResumeKey) token(id SessionID, gen uint64) []byte {
	return append(quicvarint.Append(nil, gen), k.mac(id, gen)...)
}

func (k *ResumeKey) mac(id SessionID, gen uint64) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(resumeMACLabel))
	m.Write(id[:])
	m.Write(binary.BigEndian.AppendUint64(nil, gen))
	return m.Sum(nil)[:resumeMACLen]
}

// verify checks tok for session id and returns its generation; false if
// it is not a token k issued to that session. The MAC is compared in
// constant time.
func (k *ResumeKey) verify(id SessionID, tok []byte) (uint64, bool) {
	gen, n, err := quicvarint.Parse(tok)
	if err != nil || len(tok)-n != resumeMACLen || gen >= quicvarint.Max {
		return 0, false
	}
	return gen, hmac.Equal(tok[n:], k.mac(id, gen))
}

// listenerResumeKey returns a Listener's own copy of k, or a random key
// if k is nil.
func listenerResumeKey(k *ResumeKey) *ResumeKey {
	var own ResumeKey
	if k != nil {
		own = *k
	} else {
		_, _ = rand.Read(own[:])
	}
	return &own
}

// validateResume checks Config.Resume for a dial.
func (c *Config) validateResume() error {
	r := c.Resume
	if r == nil {
		return nil
	}
	if c.DisableAcks {
		return errors.New("transport: Config.Resume needs acknowledgements, and Config.DisableAcks is set")
	}
	if len(r.Token) == 0 || len(r.Token) > wire.MaxResumeTokenLen {
		return fmt.Errorf("transport: Config.Resume.Token of %d bytes is outside 1..%d", len(r.Token), wire.MaxResumeTokenLen)
	}
	return nil
}

// clientHello is the client's HELLO: with Config.Resume, the session ID
// and token of the session to resume.
func clientHello(cfg *Config) wire.Control {
	h := localHello(cfg, nil)
	if r := cfg.Resume; r != nil {
		h.Hello.SessionID = append([]byte(nil), r.ID[:]...)
		h.Hello.ResumeToken = r.Token
	}
	return h
}

// clientResume checks the server's HELLO h (whose session ID is 16 bytes)
// against what the client asked for: a server that answers a resume with
// another session ID started a new session, which is refused as
// ErrResumeExpired. Other errors are protocol errors.
func clientResume(cfg *Config, h *wire.Hello) (resumeInfo, error) {
	var res resumeInfo
	if len(h.ResumeToken) > 0 {
		if !h.Acks {
			return res, errors.New("the server's HELLO carries RESUME_TOKEN without ACKS")
		}
		if !cfg.DisableAcks {
			res.token = append([]byte(nil), h.ResumeToken...)
		}
	}
	r := cfg.Resume
	if r == nil {
		return res, nil
	}
	if id := SessionID(h.SessionID); id != r.ID {
		return res, &ResumeError{ID: r.ID, Err: ErrResumeExpired, Detail: "the server started session " + id.String() + " instead"}
	}
	if !h.Acks {
		return res, fmt.Errorf("the server resumed session %s without ACKS", r.ID)
	}
	res.resumed = true
	return res, nil
}

// rejectServerHello closes a client's connection whose server HELLO failed
// clientResume's check with err, and returns the error for the dial.
func rejectServerHello(qc *quic.Conn, err error) error {
	var re *ResumeError
	if errors.As(err, &re) {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), re.reason())
		return re
	}
	_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), err.Error())
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}

// serverSession decides the session of a connection whose client sent h:
// a new one, or the one its resume token names if Config.OnResume agrees.
// A refusal is a *ResumeError; other errors are protocol errors, or the
// cause of ctx or of the connection's end. A token is issued when both
// sides offered acknowledgements and this server resumes sessions
// (Config.OnResume): a token it would refuse in any case would only make
// the client's next reconnect a full handshake and a refused resume
// before the new session, two round trips lost and no 0-RTT.
func serverSession(ctx context.Context, qc *quic.Conn, cfg *Config, h *wire.Hello) (SessionID, resumeInfo, error) {
	var id SessionID
	if len(h.ResumeToken) == 0 {
		_, _ = rand.Read(id[:])
		var res resumeInfo
		if h.Acks && !cfg.DisableAcks && cfg.OnResume != nil {
			res.token = cfg.ResumeKey.token(id, 0)
		}
		return id, res, nil
	}
	if len(h.SessionID) != len(id) {
		return id, resumeInfo{}, fmt.Errorf("HELLO carries RESUME_TOKEN with a session ID of %d bytes, want the %d-byte ID of the session to resume", len(h.SessionID), len(id))
	}
	if !h.Acks {
		return id, resumeInfo{}, errors.New("HELLO carries RESUME_TOKEN without ACKS")
	}
	id = SessionID(h.SessionID)
	gen, err := authorizeResume(ctx, qc, cfg, id, h.ResumeToken)
	if err != nil {
		return id, resumeInfo{}, err
	}
	return id, resumeInfo{resumed: true, gen: gen + 1, token: cfg.ResumeKey.token(id, gen+1)}, nil
}

// authorizeResume verifies a resume token for session id and asks
// Config.OnResume; it returns the token's generation, or the refusal.
func authorizeResume(ctx context.Context, qc *quic.Conn, cfg *Config, id SessionID, tok []byte) (uint64, error) {
	if cfg.DisableAcks {
		return 0, &ResumeError{ID: id, Err: ErrResumeExpired, Detail: "this server does not resume sessions: its acknowledgements are disabled"}
	}
	// A resume is decided once the client has completed the handshake,
	// never on 0-RTT data, which an attacker can replay.
	select {
	case <-qc.HandshakeComplete():
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	case <-qc.Context().Done():
		return 0, context.Cause(qc.Context())
	}
	gen, ok := cfg.ResumeKey.verify(id, tok)
	if !ok {
		return 0, &ResumeError{ID: id, Err: ErrResumeTokenInvalid}
	}
	if cfg.OnResume == nil {
		return 0, &ResumeError{ID: id, Err: ErrResumeExpired, Detail: "this server keeps no sessions to resume"}
	}
	if err := cfg.OnResume(ResumeRequest{ID: id, Generation: gen, RemoteAddr: qc.RemoteAddr()}); err != nil {
		return 0, refusal(id, err)
	}
	return gen, nil
}

// refusal makes OnResume's error a *ResumeError: its sentinel, and the
// rest of its text as the detail. An error that wraps no refusal sentinel
// refuses as ErrResumeExpired, with its text as the detail.
func refusal(id SessionID, err error) *ResumeError {
	for _, r := range resumeRefusals {
		if errors.Is(err, r.err) && r.err != ErrResumeClaim {
			detail := strings.TrimPrefix(strings.TrimPrefix(err.Error(), r.err.Error()), ": ")
			return &ResumeError{ID: id, Err: r.err, Detail: detail}
		}
	}
	return &ResumeError{ID: id, Err: ErrResumeExpired, Detail: err.Error()}
}

// handshakeFailure is the close code and reason for a server HELLO
// exchange that failed with err: a refused resume's own code and reason,
// else code.
func handshakeFailure(code ErrorCode, err error) (ErrorCode, string) {
	var re *ResumeError
	if errors.As(err, &re) {
		return re.code(), truncateReason(re.reason())
	}
	return code, err.Error()
}

// truncateReason cuts a close reason to wire.MaxReasonLen bytes of UTF-8.
func truncateReason(s string) string {
	if len(s) <= wire.MaxReasonLen {
		return s
	}
	return strings.ToValidUTF8(s[:wire.MaxReasonLen], "")
}
