package transport

// CONTRACT STUB (resumption handshake). Replaced by the real
// implementation; this file is deleted when it lands. Doc comments are the
// contract. Config gains (in config.go):
//
//	DisableAcks bool                    // do not offer acknowledgements (nor resumption)
//	AckWindow   int                     // default DefaultAckWindow
//	ResumeKey   *ResumeKey              // Listener: authenticates resume tokens; nil: random per Listener
//	OnResume    func(ResumeRequest) error // Listener: decides a resume; nil: every resume is refused as ErrResumeExpired
//	Resume      *ResumeToken            // Dial/DialEarly: resume this session instead of starting one

import (
	"context"
	"errors"
	"net"
)

// ResumeKey authenticates resume tokens (HMAC-SHA256). Keep it across
// restarts, like the TLS session ticket keys, for sessions to survive a
// restart of the process that holds them... (they do not, the state is in
// memory: keeping the key only makes the refusal say ErrResumeExpired
// instead of ErrResumeTokenInvalid).
type ResumeKey [32]byte

// ResumeToken is what a client needs to resume its session: the session
// ID and the opaque token the server issued in its HELLO.
type ResumeToken struct {
	ID    SessionID
	Token []byte
}

// ResumeRequest is a client's resume attempt whose token the Listener
// authenticated: Config.OnResume decides it.
type ResumeRequest struct {
	ID         SessionID
	Generation uint64 // the token's generation: 0 for the token issued with the session, +1 per resume
	RemoteAddr net.Addr
}

// Resume refusals, wrapped in a *ResumeError. The server closes the
// connection with the matching code right after the client's HELLO.
var (
	ErrResumeExpired       = errors.New("transport: no such session to resume: its resume window passed or the server restarted")
	ErrResumeTokenInvalid  = errors.New("transport: resume token not valid for this session: wrong MAC (forged, another session's, or issued under another key)")
	ErrResumeTokenReplayed = errors.New("transport: resume token already used: a later token was issued to the session")
	ErrSessionAttached     = errors.New("transport: session is attached to another connection")
	ErrResumeClaim         = errors.New("transport: resume state claims messages that were never sent")
)

// Error codes of resume refusals (PROTOCOL.md).
const (
	CodeResumeExpired   ErrorCode = 0x0c
	CodeResumeInvalid   ErrorCode = 0x0d
	CodeResumeReplayed  ErrorCode = 0x0e
	CodeSessionAttached ErrorCode = 0x0f
	CodeResumeClaim     ErrorCode = 0x10
)

// ResumeError is a refused resume: Dial with Config.Resume returns it (the
// connection is closed), and a side that finds the peer's resume state
// impossible closes with CodeResumeClaim, which the other side sees as a
// ResumeError wrapping ErrResumeClaim.
type ResumeError struct {
	ID     SessionID
	Err    error  // one of the ErrResume* sentinels above
	Detail string // what exactly, e.g. the channel and counts of a bad claim
}

func (e *ResumeError) Error() string {
	return "transport: resume of session " + e.ID.String() + " refused: " + e.Err.Error()
}
func (e *ResumeError) Unwrap() error { return e.Err }

// ResumeToken returns the token to resume this connection's session with
// (client side), the latest the server issued; false if the server issued
// none (acknowledgements off, or an old server).
func (c *Conn) ResumeToken() (ResumeToken, bool) { return ResumeToken{}, false }

// Resumed reports whether the HELLO exchange resumed an earlier session
// (SessionID is then the earlier session's).
func (c *Conn) Resumed() bool { return false }

// ResumeGeneration returns the generation of the token issued on this
// connection (server side): 0 for a new session, the presented token's
// generation + 1 for a resumed one.
func (c *Conn) ResumeGeneration() uint64 { return 0 }

// SendResumeState sends, on a resumed connection, how many messages this
// side has received on each channel of the session (by name), counted over
// the whole session. Each side sends it once, right after the HELLO
// exchange; frames are only valid on resumed connections.
func (c *Conn) SendResumeState(received map[string]uint64) error { return nil }

// PeerResumeState waits for the peer's resume state (see SendResumeState)
// and returns it; channels the peer does not name count as 0.
func (c *Conn) PeerResumeState(ctx context.Context) (map[string]uint64, error) { return nil, nil }

// RejectResume closes a resumed connection with CodeResumeClaim and a
// reason naming the channel and the counts, when the peer's resume state
// claims more than this side sent (or less than it had acknowledged).
func (c *Conn) RejectResume(detail string) error { return nil }
